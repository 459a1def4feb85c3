"""Errors of the vehicles package: one root, a branch per subsystem."""

from __future__ import annotations

from typing import ClassVar


class VehicleError(Exception):
    """Root of every error raised by :mod:`vehicles`."""


class IbcError(VehicleError):
    """Identity-based pseudonym signatures: issuing, parsing, verifying."""


class MalformedEncoding(IbcError, ValueError):
    """Bytes that are not a valid encoding (a signed message, a pseudonym, a credential)."""


class UnsupportedVersion(MalformedEncoding):
    def __init__(self, version: int) -> None:
        super().__init__(f"unsupported encoding version {version}")
        self.version = version


class WrongLength(MalformedEncoding):
    def __init__(self, what: str, expected: int, got: int) -> None:
        super().__init__(f"{what}: expected {expected} bytes, got {got}")
        self.what, self.expected, self.got = what, expected, got


class InvalidPoint(MalformedEncoding):
    """33 bytes that are not a compressed secp256k1 point."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not a valid compressed secp256k1 point")
        self.what = what


class ScalarOutOfRange(MalformedEncoding):
    """A scalar that is 0 or not below the group order q."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not in [1, q)")
        self.what = what


class VerificationError(IbcError):
    """A well-formed signed message was refused. Subclasses say why."""


class InvalidSignature(VerificationError):
    """The signature equation does not hold (forged or altered)."""


class StaleTimestamp(VerificationError):
    def __init__(self, timestamp_ms: int, now_ms: int, window_ms: int) -> None:
        super().__init__(f"timestamp {timestamp_ms} is older than {window_ms} ms (now {now_ms})")
        self.timestamp_ms, self.now_ms, self.window_ms = timestamp_ms, now_ms, window_ms


class FutureTimestamp(VerificationError):
    def __init__(self, timestamp_ms: int, now_ms: int, window_ms: int) -> None:
        super().__init__(f"timestamp {timestamp_ms} is more than {window_ms} ms ahead (now {now_ms})")
        self.timestamp_ms, self.now_ms, self.window_ms = timestamp_ms, now_ms, window_ms


class ReplayedMessage(VerificationError):
    """The exact signed message was already accepted."""


class RevokedPseudonym(VerificationError):
    def __init__(self, pseudonym_id: bytes) -> None:
        super().__init__(f"pseudonym 0x{pseudonym_id.hex()} is revoked")
        self.pseudonym_id = pseudonym_id


class EmptyMessage(VehicleError, ValueError):
    """A one-time-pad message needs at least one byte of plaintext."""


class MessageRefused(VehicleError):
    """The receiver refused a one-time-pad envelope.

    ``reason`` is a stable short name for reports. Every subclass but
    :class:`MacInvalid` is raised before a single pad bit is taken: the key pool is
    left exactly as it was.
    """

    reason: ClassVar[str] = "refused"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail


class MalformedEnvelope(MessageRefused, ValueError):
    """The envelope or its signed header does not parse, or names an impossible value."""

    reason = "malformed"


class UnsupportedEnvelopeVersion(MalformedEnvelope):
    """A signed header of another version (version 1 did not sign the sender)."""

    reason = "unsupported_version"

    def __init__(self, version: int) -> None:
        super().__init__(f"signed header version {version} is not accepted")
        self.version = version


class CiphertextMismatch(MessageRefused):
    """The ciphertext is not the one the signed header names (its hash or its size)."""

    reason = "ciphertext_mismatch"


class BadSignature(MessageRefused):
    """The pseudonym signature over the header does not hold."""

    reason = "bad_signature"


class StaleEnvelope(MessageRefused):
    """Signed longer ago than the verifier's window."""

    reason = "stale"


class FutureEnvelope(MessageRefused):
    """Signed further ahead than the verifier's window."""

    reason = "future"


class ReplayedEnvelope(MessageRefused):
    """This exact signed header was already accepted."""

    reason = "replayed"


class UnknownSigner(MessageRefused):
    """The signing pseudonym is not registered in the KeyRegistry."""

    reason = "unknown_signer"

    def __init__(self, pseudonym_id: bytes) -> None:
        super().__init__(f"pseudonym 0x{pseudonym_id.hex()} is not registered on chain")
        self.pseudonym_id = pseudonym_id


class SignerRevoked(MessageRefused):
    """The signing pseudonym is revoked (on chain, or in the synced revocation list)."""

    reason = "revoked"

    def __init__(self, pseudonym_id: bytes) -> None:
        super().__init__(f"pseudonym 0x{pseudonym_id.hex()} is revoked")
        self.pseudonym_id = pseudonym_id


class UnknownSession(MessageRefused):
    """The header names a session the KeyRegistry does not know."""

    reason = "unknown_session"

    def __init__(self, session_id: bytes) -> None:
        super().__init__(f"session 0x{session_id.hex()} is not on chain")
        self.session_id = session_id


class SenderNotSessionParty(MessageRefused):
    """The signer and the receiver are not the two parties of the named session."""

    reason = "sender_not_party"

    def __init__(self, session_id: bytes, signer: str, receiver: str, parties: tuple[str, str]) -> None:
        super().__init__(
            f"session 0x{session_id.hex()} is between {parties[0]} and {parties[1]}; "
            f"the header is signed by the pseudonym of {signer} and received by {receiver}"
        )
        self.session_id, self.signer, self.receiver, self.parties = session_id, signer, receiver, parties


class UnrecordedEnvelope(MessageRefused):
    """No ``MessageRecorded`` by the signer matches the header's session, offset, length
    and ciphertext hash: these are not the pad bits the chain gave the sender."""

    reason = "not_recorded"

    def __init__(self, session_id: bytes, offset: int, bits: int, block: int, why: str) -> None:
        super().__init__(f"bits [{offset}, {offset + bits}) of session 0x{session_id.hex()} in block {block}: {why}")
        self.session_id, self.offset, self.bits, self.block = session_id, offset, bits, block


class PadAlreadyUsed(MessageRefused):
    """The receiver's pool has already moved past the header's offset."""

    reason = "pad_reused"

    def __init__(self, session_id: bytes, offset: int, cursor: int) -> None:
        super().__init__(f"offset {offset} of session 0x{session_id.hex()} is below the pool's cursor {cursor}")
        self.session_id, self.offset, self.cursor = session_id, offset, cursor


class PadUnavailable(MessageRefused):
    """The pool shared with the named sender has no such session, or not that many bits."""

    reason = "pad_exhausted"

    def __init__(self, sender: str, session_id: bytes, offset: int, bits: int) -> None:
        super().__init__(
            f"the pool shared with {sender} holds no bits [{offset}, {offset + bits}) of session 0x{session_id.hex()}"
        )
        self.sender, self.session_id, self.offset, self.bits = sender, session_id, offset, bits


class MacInvalid(MessageRefused):
    """The Wegman-Carter tag does not match. Raised after the pad bits are taken (they
    are spent): only the signer, who also recorded the message on chain, can cause it."""

    reason = "mac_invalid"
