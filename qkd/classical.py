"""The authenticated classical channel between Alice and Bob, as an interface.

Post-processing is a dialogue: Bob sends a request, Alice answers. A
:class:`ClassicalChannel` carries one such exchange per call and counts messages,
round trips and bits; :class:`InMemoryChannel` delivers to a local responder (tests,
single-process simulation). A libp2p transport implements the same interface.

Every message carries ``seq``: Bob numbers his requests 1, 2, ...; Alice refuses a
request that does not come next and echoes the number in her reply, so a replayed or
reordered message on either side is caught by number (the channel's authentication,
e.g. Wegman-Carter with pool bits, is what makes the number unforgeable).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from qkd.verification import FIELD_BITS as FIELD_ELEMENT_BITS

INDEX_BITS = 32  # an index on the wire


@dataclass(frozen=True)
class SiftRequest:
    """Bob: the slots that clicked (one index each on the wire) and his basis for each."""

    bases: np.ndarray  # uint8, one per click
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.bases.size * (INDEX_BITS + 1))


@dataclass(frozen=True)
class SiftReply:
    """Alice: her basis and the intensity label of every click (public from now on)."""

    bases: np.ndarray  # uint8, one per click
    intensity: np.ndarray  # uint8, one per click
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.bases.size + 2 * self.intensity.size)


@dataclass(frozen=True)
class RevealRequest:
    """Disclose the test basis: ``group`` ``"z"``, the positions index the Z-basis
    detections (never key bits); Bob sends his bits, Alice answers with hers."""

    group: str
    positions: np.ndarray
    bits: np.ndarray
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.positions.size * INDEX_BITS + self.bits.size)


@dataclass(frozen=True)
class RevealReply:
    bits: np.ndarray
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.bits.size)


@dataclass(frozen=True)
class ParityRequest:
    """Bob asks for the parities of Alice's key bits over index sets (Cascade)."""

    index_sets: tuple[np.ndarray, ...]
    seq: int = 0

    def wire_bits(self) -> int:
        # A set is a contiguous run of a public permutation: two indices name it.
        return 2 * INDEX_BITS * len(self.index_sets)


@dataclass(frozen=True)
class ParityReply:
    parities: np.ndarray
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.parities.size)


@dataclass(frozen=True)
class SyndromeRequest:
    """Bob asks for syndrome bits of Alice's key, cut into ``frames`` frames of
    ``frame_bits`` (zero-padded at the end), under the public mother code
    ``(frame_bits, rows, code_seed)``, for the frames ``frame_ids`` (all when empty).
    The first request (``split_to`` < 0) asks for the code with the first ``merged``
    pairs of rows merged; a retry asks for the first row of each pair in
    ``[split_to, merged)``, splitting them again.

    The first request may carry ``hash_keys`` (fresh from Bob's operating system): Alice
    then answers with every frame's universal-hash tag under them too, and each frame is
    verified on its own (:data:`SYNDROME_ROUNDS_MAX` requests at most, so that the
    union bound over the words Bob may check is known before he draws the keys).

    Once every pair is split (``merged == split_to == 0``), a last request may ask for
    ``extra`` checks beyond the mother code instead (:func:`qkd.ldpc.tail_code`)."""

    frame_bits: int
    rows: int
    code_seed: int
    frames: int
    merged: int
    split_to: int = -1
    frame_ids: tuple[int, ...] = ()
    hash_keys: tuple[int, ...] = ()
    extra: int = 0
    seq: int = 0

    def wire_bits(self) -> int:
        return (7 + len(self.frame_ids)) * INDEX_BITS + FIELD_ELEMENT_BITS * len(self.hash_keys)


# Syndrome requests per session at most: each is a round trip, and with per-frame
# verification each may hand Bob one more decoded word to check against a frame's tag.
SYNDROME_ROUNDS_MAX = 5


@dataclass(frozen=True)
class SyndromeReply:
    """The syndrome bits of each requested frame; to a first request with hash keys,
    also each frame's tag (one field element per key)."""

    syndromes: np.ndarray  # (frames, rows) uint8
    tags: tuple[tuple[int, ...], ...] = ()
    seq: int = 0

    def wire_bits(self) -> int:
        return int(self.syndromes.size) + FIELD_ELEMENT_BITS * sum(len(t) for t in self.tags)


@dataclass(frozen=True)
class VerifyRequest:
    """Bob's universal-hash keys (fresh from his OS) and the final length he computed,
    so Alice sizes the privacy-amplification seed. Bob keeps his own tag: he compares
    it with hers (one way, so a peer cannot pass by echoing it)."""

    keys: tuple[int, ...]
    final_bits: int
    seq: int = 0

    def wire_bits(self) -> int:
        return FIELD_ELEMENT_BITS * len(self.keys) + INDEX_BITS


@dataclass(frozen=True)
class VerifyReply:
    """Alice's tag, and the Toeplitz seed she drew from her operating system."""

    tag: tuple[int, ...]
    toeplitz_seed: np.ndarray  # bits
    seq: int = 0

    def wire_bits(self) -> int:
        return FIELD_ELEMENT_BITS * len(self.tag) + int(self.toeplitz_seed.size)


Request = SiftRequest | RevealRequest | ParityRequest | SyndromeRequest | VerifyRequest
Reply = SiftReply | RevealReply | ParityReply | SyndromeReply | VerifyReply


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
