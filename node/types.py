"""Typed values crossing the registry client's seam."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NewType

Address = NewType("Address", str)
"""A checksummed 20-byte account address (``0x...``)."""
SessionId = NewType("SessionId", bytes)
"""32 bytes naming one QKD key session on chain."""
PseudonymId = NewType("PseudonymId", bytes)
"""32 bytes: the keccak of an IBC pseudonym ``SID`` as recorded on chain."""
KeyHash = NewType("KeyHash", bytes)
"""32 bytes: ``keccak256(session_id || reconciled_block)``."""


class Role(IntEnum):
    NONE = 0
    VALIDATOR = 1
    VEHICLE = 2


class SessionState(IntEnum):
    NONE = 0
    COMMITTED = 1
    AGREED = 2
    MISMATCH = 3
    EXPIRED = 4


@dataclass(frozen=True)
class SessionInfo:
    initiator: Address
    key_bits: int
    expires_at: int
    peer: Address
    state: SessionState
    consumed_bits: int
    key_hash: KeyHash


@dataclass(frozen=True)
class IdentityRecord:
    account: Address
    registered_at: int
    revoked_at: int

    @property
    def exists(self) -> bool:
        return int(self.account, 16) != 0

    @property
    def revoked(self) -> bool:
        return self.revoked_at != 0


@dataclass(frozen=True)
class Commitment:
    """One entry of ``commitKeys``: what ``commitKey`` takes."""

    session_id: SessionId
    peer: Address
    key_hash: KeyHash
    key_bits: int
    ttl: int


@dataclass(frozen=True)
class Confirmation:
    """One entry of ``confirmKeys``."""

    session_id: SessionId
    key_hash: KeyHash


@dataclass(frozen=True)
class Event:
    """A decoded registry event."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction.

    ``latency_ms`` is validation latency as we measure it everywhere: from
    handing the signed transaction to the node to its receipt being readable.
    """

    tx_hash: str
    block_number: int
    gas_used: int
    latency_ms: float
    events: tuple[Event, ...] = field(default=())

    def event(self, name: str) -> Event:
        """The first event called ``name``; ``LookupError`` if there is none."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise LookupError(f"transaction {self.tx_hash} emitted no {name}")
