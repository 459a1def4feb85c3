"""The authenticated classical channel between Alice and Bob, as an interface.

Post-processing is a dialogue: Bob sends a request, Alice answers. A
:class:`ClassicalChannel` carries one such exchange per call and counts messages,
rounds and bits; :class:`InMemoryChannel` delivers to a local responder (tests,
single-process simulation). A libp2p transport implements the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

INDEX_BITS = 32  # an index on the wire


@dataclass(frozen=True)
class SiftRequest:
    """Bob: which pulses clicked, and his basis for each click."""

    detected: np.ndarray  # bool, one per pulse
    bases: np.ndarray  # uint8, one per click

    def wire_bits(self) -> int:
        return int(self.detected.size + self.bases.size)


@dataclass(frozen=True)
class SiftReply:
    """Alice: for each click, whether the bases matched, and each click's intensity."""

    match: np.ndarray  # bool, one per click
    intensity: np.ndarray  # uint8, one per click (decoy labels are public afterwards)

    def wire_bits(self) -> int:
        return int(self.match.size + 2 * self.intensity.size)


@dataclass(frozen=True)
class RevealRequest:
    """Bob discloses bits at positions of a sifted set; Alice answers with hers.

    ``group`` names the set: ``"sample"`` (key bits sacrificed for estimation),
    ``"decoy"`` or ``"vacuum"`` (never key bits)."""

    group: str
    positions: np.ndarray
    bits: np.ndarray

    def wire_bits(self) -> int:
        return int(self.positions.size * INDEX_BITS + self.bits.size)


@dataclass(frozen=True)
class RevealReply:
    bits: np.ndarray

    def wire_bits(self) -> int:
        return int(self.bits.size)


@dataclass(frozen=True)
class ParityRequest:
    """Bob asks for the parities of Alice's reconciled-key bits over index sets."""

    index_sets: tuple[np.ndarray, ...]

    def wire_bits(self) -> int:
        # A set is a contiguous run of a public permutation: two indices name it.
        return 2 * INDEX_BITS * len(self.index_sets)


@dataclass(frozen=True)
class ParityReply:
    parities: np.ndarray

    def wire_bits(self) -> int:
        return int(self.parities.size)


@dataclass(frozen=True)
class VerifyRequest:
    """Bob's commitment to his reconciled block (the hash that goes on chain)."""

    digest: bytes

    def wire_bits(self) -> int:
        return 8 * len(self.digest)


@dataclass(frozen=True)
class VerifyReply:
    digest: bytes

    def wire_bits(self) -> int:
        return 8 * len(self.digest)


Request = SiftRequest | RevealRequest | ParityRequest | VerifyRequest
Reply = SiftReply | RevealReply | ParityReply | VerifyReply


class Responder(Protocol):
    """Alice's side of the dialogue."""

    def handle(self, request: Request) -> Reply: ...


@dataclass
class ChannelStats:
    messages: int = 0
    rounds: int = 0
    bits: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, request: Request, reply: Reply) -> None:
        self.messages += 2
        self.rounds += 1
        self.bits += request.wire_bits() + reply.wire_bits()
        kind = type(request).__name__
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def to_json(self) -> dict[str, object]:
        return {"messages": self.messages, "rounds": self.rounds, "bits": self.bits, "by_kind": dict(self.by_kind)}


@runtime_checkable
class ClassicalChannel(Protocol):
    stats: ChannelStats

    def exchange(self, request: Request) -> Reply:
        """Send ``request`` to the peer and return its reply (one round trip).

        Raises:
            qkd.errors.QkdError: the peer could not be reached or refused.
        """
        ...


class InMemoryChannel:
    """A channel to a responder in the same process. Arrays are copied both ways,
    so neither side can alias the other's state."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self.stats = ChannelStats()

    def exchange(self, request: Request) -> Reply:
        reply = self._responder.handle(_copy(request))
        self.stats.count(request, reply)
        return _copy(reply)


Message = TypeVar("Message", bound=Request | Reply)


def _copy(message: Message) -> Message:
    changes: dict[str, Any] = {k: np.copy(v) for k, v in vars(message).items() if isinstance(v, np.ndarray)}
    if isinstance(message, ParityRequest):
        changes["index_sets"] = tuple(np.copy(s) for s in message.index_sets)
    return replace(message, **changes)
