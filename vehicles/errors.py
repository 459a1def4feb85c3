"""Errors of the vehicles package: one root, a branch per subsystem."""

from __future__ import annotations


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
