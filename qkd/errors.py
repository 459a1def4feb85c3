"""Errors of the qkd package: one root, a branch per subsystem."""

from __future__ import annotations

from typing import Any


class QkdError(Exception):
    """Root of every error raised by :mod:`qkd`."""


class ConfigError(QkdError, ValueError):
    """A channel, source or protocol parameter is out of range."""


class ReconciliationError(QkdError):
    """Error correction could not make the two blocks equal."""


class FrameVerificationFailed(ReconciliationError):
    """A frame decoded to words that satisfy its syndrome but not its verification tag,
    up to the last retry."""


class KeyPoolError(QkdError):
    """The key pool's files are unreadable or inconsistent."""


class KeyPoolExhausted(KeyPoolError):
    """Not enough unused key bits for a request."""

    def __init__(self, peer: str, requested: int, available: int) -> None:
        super().__init__(f"key pool for {peer} has {available} unused bits in one key, {requested} requested")
        self.peer, self.requested, self.available = peer, requested, available


class SessionAborted(QkdError):
    """The session produced no key; ``reason`` names why (e.g. ``qber_above_threshold``).

    ``record`` carries what was measured up to the abort, when a session ran.
    """

    def __init__(self, reason: str, detail: str, record: Any = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record = record


class PadReused(KeyPoolError):
    """Bits before a key's cursor were asked for again."""

    def __init__(self, peer: str, session_id: bytes, offset: int, cursor: int) -> None:
        super().__init__(
            f"pad bits from {offset} of session 0x{session_id.hex()[:16]}… with {peer} are used (cursor {cursor})"
        )
        self.peer, self.session_id, self.offset, self.cursor = peer, session_id, offset, cursor


class ProtocolViolation(QkdError):
    """The peer broke the post-processing protocol: ``reason`` is ``malformed_message``
    (wrong type, shape or length), ``replayed_message`` (a sequence number out of
    order), ``out_of_order`` (a stage out of turn), ``excessive_length`` (a final
    length above the answering side's own bound) or ``peer_refused``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
