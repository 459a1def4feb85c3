"""The one-time-pad envelope and the header its sender signs.

Everything the receiver acts on is in the header, and the header is the message the
sender's pseudonym signs: the sender's name (it selects the receiver's pool), the
session, the pad bits (offset and length), the MAC tag, the hash of the ciphertext
(the one recorded on chain) and the block holding that record. Nothing outside the
signature is trusted; the ciphertext is bound to it through its hash.

Signed header, version 2, integers big-endian::

    domain 16 "qkdchain/otp-msg" | version 1 = 2 | session 32 | offset 4 | bits 4
    | tag 16 | keccak256(ciphertext) 32 | record block 8 | sender length 1 | sender (ASCII)

Version 1 (``session | offset | bits | tag``, 56 bytes, no domain tag, no version
byte) left the sender unsigned and is refused. The domain tag also keeps a header
from passing for any other message signed with the same pseudonym.

Envelope on the wire::

    signed length 4 | SignedMessage encoding (its message is the header) | ciphertext
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vehicles import mac
from vehicles.errors import MalformedEncoding, MalformedEnvelope, UnsupportedEnvelopeVersion
from vehicles.ibc import SignedMessage

DOMAIN = b"qkdchain/otp-msg"
VERSION = 2
MAX_SENDER_LEN = 128
V1_HEADER_LEN = 32 + 4 + 4 + mac.TAG_BYTES
_FIXED = struct.Struct(f">{len(DOMAIN)}sB32sII{mac.TAG_BYTES}s32sQB")
_SIGNED_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class MessageHeader:
    """What the sender signs. Construction validates every field.

    Raises:
        MalformedEnvelope: a field out of range (sizes, u32/u64 bounds, sender name).
    """

    sender: str
    session_id: bytes
    offset: int
    bits: int
    tag: bytes
    ciphertext_hash: bytes
    record_block: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.sender) <= MAX_SENDER_LEN or not self.sender.isascii():
            raise MalformedEnvelope(f"sender must be 1 to {MAX_SENDER_LEN} ASCII characters, got {self.sender!r}")
        for name, value, size in (
            ("session id", self.session_id, 32),
            ("tag", self.tag, mac.TAG_BYTES),
            ("ciphertext hash", self.ciphertext_hash, 32),
        ):
            if len(value) != size:
                raise MalformedEnvelope(f"{name}: expected {size} bytes, got {len(value)}")
        for name, number, bound in (
            ("offset", self.offset, 1 << 32),
            ("bits", self.bits, 1 << 32),
            ("record block", self.record_block, 1 << 64),
        ):
            if not 0 <= number < bound:
                raise MalformedEnvelope(f"{name} {number} is not in [0, {bound})")

    def encode(self) -> bytes:
        sender = self.sender.encode("ascii")
        fixed = _FIXED.pack(
            DOMAIN,
            VERSION,
            self.session_id,
            self.offset,
            self.bits,
            self.tag,
            self.ciphertext_hash,
            self.record_block,
            len(sender),
        )
        return fixed + sender

    @classmethod
    def decode(cls, data: bytes) -> MessageHeader:
        """Parse a signed header.

        Raises:
            UnsupportedEnvelopeVersion: version 1 (no domain tag, 56 bytes) or an unknown version.
            MalformedEnvelope: anything else that is not a version-2 header.
        """
        if not data.startswith(DOMAIN):
            if len(data) == V1_HEADER_LEN:
                raise UnsupportedEnvelopeVersion(1)
            raise MalformedEnvelope("the signed message is not a one-time-pad header (no domain tag)")
        if len(data) > len(DOMAIN) and data[len(DOMAIN)] != VERSION:
            raise UnsupportedEnvelopeVersion(data[len(DOMAIN)])
        if len(data) < _FIXED.size:
            raise MalformedEnvelope(f"signed header: expected at least {_FIXED.size} bytes, got {len(data)}")
        _, _, session_id, offset, bits, tag, digest, block, sender_len = _FIXED.unpack_from(data)
        if len(data) != _FIXED.size + sender_len:
            raise MalformedEnvelope(f"signed header: expected {_FIXED.size + sender_len} bytes, got {len(data)}")
        try:
            sender = data[_FIXED.size :].decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedEnvelope("sender is not ASCII") from exc
        return cls(sender, session_id, offset, bits, tag, digest, block)


@dataclass(frozen=True)
class Envelope:
    """What travels from sender to receiver (over any untrusted transport).

    ``header`` is parsed from ``signed.message`` on construction, so an envelope
    cannot carry a header field that its signature does not cover.

    Raises:
        MalformedEnvelope: ``signed.message`` is not a version-2 header.
    """

    signed: SignedMessage
    ciphertext: bytes
    header: MessageHeader = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", MessageHeader.decode(self.signed.message))

    def encode(self) -> bytes:
        signed = self.signed.encode()
        return _SIGNED_LEN.pack(len(signed)) + signed + self.ciphertext

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Parse an envelope received from the wire.

        Raises:
            MalformedEnvelope: truncated, a bad signed-message encoding, or a bad header.
        """
        if len(data) < _SIGNED_LEN.size:
            raise MalformedEnvelope(f"envelope: expected at least {_SIGNED_LEN.size} bytes, got {len(data)}")
        (signed_len,) = _SIGNED_LEN.unpack_from(data)
        end = _SIGNED_LEN.size + signed_len
        if len(data) < end:
            raise MalformedEnvelope(f"envelope: the signed part needs {signed_len} bytes, {len(data) - 4} left")
        try:
            signed = SignedMessage.decode(data[_SIGNED_LEN.size : end])
        except MalformedEncoding as exc:
            raise MalformedEnvelope(f"signed part: {exc}") from exc
        return cls(signed, bytes(data[end:]))
