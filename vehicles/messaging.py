"""One-time-pad messages: sealing by the sender, opening by the receiver.

``C = M xor K`` with pad bits never used before, a Wegman-Carter tag over ``C`` from
the next 256 pool bits, an IBC signature over the header (session, offset, bits,
tag), and an on-chain ``recordMessage`` that makes the pad consumption auditable.
The receiver checks, in order: signature, revocation, freshness and replay (the
:class:`vehicles.ibc.Verifier`), the pad range (never used before), the MAC, and the
on-chain record; only then it decrypts. Each refusal is a
:class:`MessageRefused` with a named ``reason``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
from eth_utils.crypto import keccak

from node.client.registry import KeyRegistry
from node.types import SessionId, TxResult
from qkd.errors import KeyPoolExhausted, PadReused
from qkd.keypool import KeyPool
from vehicles import mac
from vehicles.errors import (
    FutureTimestamp,
    InvalidSignature,
    ReplayedMessage,
    RevokedPseudonym,
    StaleTimestamp,
    VehicleError,
    VerificationError,
)
from vehicles.ibc import Credential, SignedMessage, Verifier, sign
from vehicles.ibc.curve import RandomSource

Reason = Literal[
    "bad_signature",
    "revoked",
    "replayed",
    "stale",
    "future",
    "pad_reused",
    "pad_exhausted",
    "mac_invalid",
    "not_recorded",
]
_VERIFIER_REASONS: dict[type[VerificationError], Reason] = {
    InvalidSignature: "bad_signature",
    RevokedPseudonym: "revoked",
    ReplayedMessage: "replayed",
    StaleTimestamp: "stale",
    FutureTimestamp: "future",
}


class MessageRefused(VehicleError):
    """The receiver refused a message; ``reason`` says which check failed."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Envelope:
    """What travels from sender to receiver (over any untrusted transport)."""

    sender: str
    session_id: bytes
    offset: int
    bits: int
    ciphertext: bytes
    tag: bytes
    signed: SignedMessage
    record_block: int  # where the sender's recordMessage landed (a lookup hint, not trusted)

    @staticmethod
    def header(session_id: bytes, offset: int, bits: int, tag: bytes) -> bytes:
        return session_id + struct.pack(">II", offset, bits) + tag


def pad_bits_for(plaintext: bytes) -> int:
    return 8 * len(plaintext) + mac.KEY_BITS


def seal(
    sender: str,
    peer: str,
    plaintext: bytes,
    pool: KeyPool,
    registry: KeyRegistry,
    credential: Credential,
    now_ms: int,
    rng: RandomSource | None = None,
) -> tuple[Envelope, TxResult]:
    """Encrypt, authenticate, record on chain and sign ``plaintext`` for ``peer``.

    Returns the envelope to deliver and the ``recordMessage`` transaction.

    Raises:
        KeyPoolExhausted: not enough unused key bits shared with ``peer``.
        node.errors.ContractRevert: the chain refused the record (e.g. ``AccountRevoked``).
    """
    if not plaintext:
        raise ValueError("empty message")
    pad = pool.take(peer, pad_bits_for(plaintext))
    ciphertext = _xor(plaintext, pad.bits[: 8 * len(plaintext)])
    tag = mac.tag(pad.bits[8 * len(plaintext) :], ciphertext)
    result = registry.record_message(SessionId(pad.session_id), keccak(ciphertext), pad.offset, pad.bits.size)
    header = Envelope.header(pad.session_id, pad.offset, pad.bits.size, tag)
    signed = sign(credential, header, now_ms, rng)
    envelope = Envelope(sender, pad.session_id, pad.offset, pad.bits.size, ciphertext, tag, signed, result.block_number)
    return envelope, result


def open_envelope(envelope: Envelope, pool: KeyPool, registry: KeyRegistry, verifier: Verifier) -> bytes:
    """Check ``envelope`` and return the plaintext.

    Raises:
        MessageRefused: with the reason of the first check that failed.
    """
    header = Envelope.header(envelope.session_id, envelope.offset, envelope.bits, envelope.tag)
    if envelope.signed.message != header:
        raise MessageRefused("bad_signature", "the signature does not cover this header")
    try:
        verifier.verify(envelope.signed)
    except VerificationError as exc:
        raise MessageRefused(_VERIFIER_REASONS.get(type(exc), "bad_signature"), str(exc)) from exc
    text_bits = 8 * len(envelope.ciphertext)
    if envelope.bits != text_bits + mac.KEY_BITS:
        raise MessageRefused("mac_invalid", "pad length does not match the ciphertext")
    try:
        pad = pool.take_at(envelope.sender, envelope.session_id, envelope.offset, envelope.bits)
    except PadReused as exc:
        raise MessageRefused("pad_reused", str(exc)) from exc
    except KeyPoolExhausted as exc:
        raise MessageRefused("pad_exhausted", str(exc)) from exc
    if not mac.verify(pad.bits[text_bits:], envelope.ciphertext, envelope.tag):
        raise MessageRefused("mac_invalid", "the Wegman-Carter tag does not match the ciphertext")
    if not _recorded(envelope, registry):
        raise MessageRefused("not_recorded", "no matching recordMessage on chain")
    return _xor(envelope.ciphertext, pad.bits[:text_bits])


def _recorded(envelope: Envelope, registry: KeyRegistry) -> bool:
    account = registry.get_identity(envelope.signed.pseudonym.pseudonym_id).account  # type: ignore[arg-type]
    digest = keccak(envelope.ciphertext)
    for event in registry.events("MessageRecorded", from_block=envelope.record_block, to_block=envelope.record_block):
        a = event.args
        if (
            a["sessionId"] == envelope.session_id
            and a["sender"] == account
            and a["ciphertextHash"] == digest
            and a["offset"] == envelope.offset
            and a["bits"] == envelope.bits
        ):
            return True
    return False


def _xor(data: bytes, bits: np.ndarray) -> bytes:
    return (np.frombuffer(data, dtype=np.uint8) ^ np.packbits(bits.astype(np.uint8))).tobytes()
