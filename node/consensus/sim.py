"""A deterministic in-memory network of QBFT machines, for tests and exploration.

One seeded RNG and a virtual clock (an event queue ordered by time) drive N
machines. Links delay, drop, duplicate and (through random delays) reorder messages;
partitions can be set and healed, nodes crashed and restarted (with their
consensus state lost, as after a process restart), and a node can be given a
byzantine behaviour that rewrites what it broadcasts. A node that sees messages
for a later height syncs the blocks it lacks from the sender, checking their seals
with :func:`~node.consensus.finality.verify_finality`, as a real node would.

Blocks are ``rlp([height, round, proposer, payload])`` (:class:`StubBlocks`). Each
node's decisions are kept per height, so tests can check agreement and validity.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import rlp
from coincurve import PrivateKey

from node.consensus.errors import ConsensusError, InvalidBlock
from node.consensus.messages import Proposal, SignedMessage, decode, encode, sign
from node.consensus.qbft import (
    Action,
    Broadcast,
    BuildBlock,
    Decide,
    FutureMessage,
    QbftConfig,
    QbftMachine,
    Refused,
    SetTimer,
)
from node.consensus.quorum import proposer_of
from node.hashing import address_of_public, keccak

# --- blocks --------------------------------------------------------------------------------


class StubBlocks:
    """``BlockOps`` over ``rlp([height, round, proposer, payload])``; a payload starting ``b"invalid"`` is invalid."""

    @staticmethod
    def make(height: int, round: int, proposer: str, payload: bytes) -> bytes:
        """A block (``proposer`` is the lower-case ``0x`` address of its builder)."""
        return bytes(rlp.encode([height, round, bytes.fromhex(proposer[2:]), payload]))

    @staticmethod
    def fields(block: bytes) -> tuple[int, int, str, bytes]:
        """``(height, round, proposer, payload)`` of ``block``.

        Raises:
            InvalidBlock: ``block`` is not a stub block.
        """
        try:
            items = rlp.decode(block, strict=True)
        except (rlp.exceptions.RLPException, RecursionError) as exc:
            raise InvalidBlock("not RLP") from exc
        if not isinstance(items, list) or len(items) != 4 or not all(isinstance(x, bytes) for x in items):
            raise InvalidBlock("a stub block is a list of four byte strings")
        height, round_, proposer, payload = items
        if len(proposer) != 20 or len(height) > 8 or len(round_) > 8:
            raise InvalidBlock("bad field width")
        return int.from_bytes(height, "big"), int.from_bytes(round_, "big"), "0x" + proposer.hex(), payload

    def digest(self, block: bytes) -> bytes:
        self.fields(block)
        return keccak(block)

    def with_round(self, block: bytes, round: int) -> bytes:
        height, _, proposer, payload = self.fields(block)
        return self.make(height, round, proposer, payload)

    def height(self, block: bytes) -> int:
        return self.fields(block)[0]

    def round(self, block: bytes) -> int:
        return self.fields(block)[1]

    def validate(self, block: bytes) -> bool:
        return not self.fields(block)[3].startswith(b"invalid")

    def content(self, block: bytes) -> bytes:
        """The block without its round stamp: what agreement is about."""
        return self.with_round(block, 0)


# --- network ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkFaults:
    """Faults of every link: a uniform delay in seconds, drop and duplicate probabilities."""

    min_delay: float = 0.01
    max_delay: float = 0.1
    drop: float = 0.0
    duplicate: float = 0.0


@dataclass(frozen=True)
class Decision:
    """A node's block at ``height``: decided by consensus, or synced (``synced``) with its seals checked."""

    height: int
    round: int
    block: bytes
    seals: tuple[bytes, ...]
    synced: bool


class Behaviour(Protocol):
    """What a node does with one of its own broadcasts: the ``(peer, bytes)`` it actually sends."""

    def outgoing(self, sim: Simulation, node: int, data: bytes) -> list[tuple[int, bytes]]: ...


class Honest:
    """Sends every broadcast to every peer."""

    def outgoing(self, sim: Simulation, node: int, data: bytes) -> list[tuple[int, bytes]]:
        return [(peer, data) for peer in sim.peers(node)]


class Mute:
    """Runs the protocol but sends nothing (a crashed-looking byzantine node)."""

    def outgoing(self, sim: Simulation, node: int, data: bytes) -> list[tuple[int, bytes]]:
        return []


class Equivocator:
    """As proposer, sends a different new block to every other peer (with the same justification)."""

    def outgoing(self, sim: Simulation, node: int, data: bytes) -> list[tuple[int, bytes]]:
        message = decode(data)
        payload = message.payload
        if not isinstance(payload, Proposal) or payload.prepare_justification:
            return Honest().outgoing(sim, node, data)
        height, round_, proposer, body = sim.ops.fields(payload.block)
        other = sim.ops.make(height, round_, proposer, body + b"/equivocation")
        sim.record_build(other, node)
        forged = encode(sign(Proposal(height, round_, other, payload.round_change_justification), sim.keys[node]))
        return [(peer, forged if i % 2 else data) for i, peer in enumerate(sim.peers(node))]


class GarbageSender:
    """Sends its broadcasts honestly, plus random bytes and a corrupted copy to every peer."""

    def outgoing(self, sim: Simulation, node: int, data: bytes) -> list[tuple[int, bytes]]:
        sent = Honest().outgoing(sim, node, data)
        for peer in sim.peers(node):
            noise = sim.rng.randbytes(sim.rng.randrange(0, 200))
            corrupt = bytearray(data)
            corrupt[sim.rng.randrange(len(corrupt))] ^= 1 << sim.rng.randrange(8)
            sent += [(peer, noise), (peer, bytes(corrupt))]
        return sent


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class Simulation:
    """N QBFT machines on a simulated network.

    Args:
        n: number of nodes (node i's key is fixed by i, so addresses do not depend on the seed).
        seed: seeds every random choice (delays, drops, byzantine noise).
        faults: link faults until changed with :meth:`set_faults`.
        blocks: each node has work (transactions) for heights ``1 .. blocks``.
        validators: node indices validating a height (default: all, in index order).
        behaviours: byzantine behaviours by node index (others are honest).
        config: the machines' configuration.
        status_interval: every node tells its peers its height this often (seconds); a
            node behind fetches the blocks it lacks (a chain-sync protocol in miniature).
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        faults: LinkFaults | None = None,
        blocks: int = 3,
        validators: Callable[[int], Sequence[int]] | None = None,
        behaviours: dict[int, Behaviour] | None = None,
        config: QbftConfig | None = None,
        status_interval: float = 2.0,
    ) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.faults = faults or LinkFaults()
        self.blocks = blocks
        self.ops = StubBlocks()
        self.config = config or QbftConfig()
        self.keys = [PrivateKey(keccak(f"qbft-sim-node-{i}".encode())) for i in range(n)]
        self.addresses = [address_of_public(k.public_key) for k in self.keys]
        self._index = {a: i for i, a in enumerate(self.addresses)}
        members = validators or (lambda height: range(n))
        self.validator_indices = members
        self.behaviours = behaviours or {}
        self.now = 0.0
        self.events = 0
        self._queue: list[_Event] = []
        self._seq = 0
        self._up = [True] * n
        self._groups: list[set[int]] | None = None
        self._syncing = [False] * n
        self._decoded: dict[bytes, SignedMessage | ConsensusError] = {}
        self.decisions: list[dict[int, Decision]] = [{} for _ in range(n)]
        self.builds: dict[bytes, tuple[int, int, int]] = {}
        """Block content -> (builder, height, round) of every block a node built."""
        self.refusals: list[tuple[int, ConsensusError]] = []
        self.machines = [self._new_machine(i, 1) for i in range(n)]
        self.status_interval = status_interval
        for i in range(n):
            self.at(self.rng.uniform(0, status_interval), partial(self._status, i))

    # --- scenario ---------------------------------------------------------------------

    def validators(self, height: int) -> list[str]:
        """The validator addresses of ``height``."""
        return [self.addresses[i] for i in self.validator_indices(height)]

    def peers(self, node: int) -> list[int]:
        """Every node but ``node``."""
        return [i for i in range(self.n) if i != node]

    def at(self, time: float, run: Callable[[], None]) -> None:
        """Run ``run`` at virtual ``time``."""
        self._seq += 1
        heapq.heappush(self._queue, _Event(max(time, self.now), self._seq, run))

    def give_work(self, at: float = 0.0, nodes: Sequence[int] | None = None) -> None:
        """Tell ``nodes`` (default: all) at ``at`` that transactions wait."""
        for i in range(self.n) if nodes is None else nodes:
            self.at(at, partial(self._work, i))

    def crash(self, node: int, at: float) -> None:
        """Stop ``node`` at ``at``: it receives, sends and times out nothing."""
        self.at(at, lambda: self._set_up(node, False))

    def recover(self, node: int, at: float) -> None:
        """Restart ``node`` at ``at`` from its last block, with fresh consensus state."""

        def restart() -> None:
            self._set_up(node, True)
            height = max(self.decisions[node], default=0) + 1
            self.machines[node] = self._new_machine(node, height)
            self._work(node)

        self.at(at, restart)

    def partition(self, groups: Sequence[set[int]], at: float) -> None:
        """From ``at``, only nodes in the same group reach each other (messages in flight across are lost)."""
        frozen = [set(g) for g in groups]
        self.at(at, lambda: setattr(self, "_groups", frozen))

    def heal(self, at: float) -> None:
        """Remove the partition at ``at``."""
        self.at(at, lambda: setattr(self, "_groups", None))

    def set_faults(self, faults: LinkFaults, at: float) -> None:
        """Change the link faults at ``at``."""
        self.at(at, lambda: setattr(self, "faults", faults))

    def run(self, until: float, max_events: int = 1_000_000, stop_at_height: int | None = None) -> None:
        """Process events up to virtual time ``until`` (or ``max_events`` of them).

        With ``stop_at_height``, stop early once every honest node that is up has that many blocks.
        """
        while self._queue and self._queue[0].time <= until and self.events < max_events:
            event = heapq.heappop(self._queue)
            self.now = event.time
            self.events += 1
            event.run()
            if stop_at_height is not None and self.events % 64 == 0 and self._reached(stop_at_height):
                return
        self.now = max(self.now, until)

    def _reached(self, height: int) -> bool:
        return all(self.height_of(i) >= height for i in self.honest() if self._up[i])

    def record_build(self, block: bytes, builder: int) -> None:
        """Note that ``builder`` built ``block`` (for the validity check)."""
        height, round_, _, _ = self.ops.fields(block)
        self.builds.setdefault(self.ops.content(block), (builder, height, round_))

    # --- checks ---------------------------------------------------------------------------

    def honest(self) -> list[int]:
        """Nodes without a byzantine behaviour."""
        return [i for i in range(self.n) if i not in self.behaviours]

    def height_of(self, node: int) -> int:
        """The number of blocks ``node`` has (decided or synced)."""
        return len(self.decisions[node])

    def agreement_violations(self) -> list[int]:
        """Heights at which two honest nodes have blocks of different content."""
        heights = {h for i in self.honest() for h in self.decisions[i]}
        bad = []
        for height in sorted(heights):
            contents = {self.ops.content(d[height].block) for i in self.honest() if height in (d := self.decisions[i])}
            if len(contents) > 1:
                bad.append(height)
        return bad

    def validity_violations(self) -> list[int]:
        """Heights with a block no rightful proposer built, or that the application refuses."""
        bad = set()
        for i in self.honest():
            for height, decision in self.decisions[i].items():
                built = self.builds.get(self.ops.content(decision.block))
                if built is None or not self.ops.validate(decision.block):
                    bad.add(height)
                    continue
                builder, built_height, built_round = built
                rightful = proposer_of(self.validators(built_height), built_height, built_round)
                if built_height != height or self.addresses[builder] != rightful:
                    bad.add(height)
        return sorted(bad)

    # --- machinery ------------------------------------------------------------------------

    def _new_machine(self, node: int, height: int) -> QbftMachine:
        return QbftMachine(self.keys[node].secret, self.ops, self.validators, height, self.config)

    def _set_up(self, node: int, up: bool) -> None:
        self._up[node] = up
        self._syncing[node] = False

    def _work(self, node: int) -> None:
        if self._up[node] and self.machines[node].height <= self.blocks:
            self._apply(node, self.machines[node].work_available())

    def _linked(self, a: int, b: int) -> bool:
        if not (self._up[a] and self._up[b]):
            return False
        return self._groups is None or any(a in g and b in g for g in self._groups)

    def _delay(self) -> float:
        return self.rng.uniform(self.faults.min_delay, self.faults.max_delay)

    def _apply(self, node: int, actions: list[Action], synced: bool = False) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                behaviour = self.behaviours.get(node, Honest())
                for peer, data in behaviour.outgoing(self, node, action.data):
                    self._send(node, peer, data)
            elif isinstance(action, SetTimer):
                self.at(self.now + action.seconds, partial(self._timer, node, self.machines[node], action))
            elif isinstance(action, BuildBlock):
                self.at(self.now, partial(self._build, node, action))
            elif isinstance(action, Decide):
                self._decide(node, Decision(action.height, action.round, action.block, action.seals, synced))
            elif isinstance(action, FutureMessage):
                source = self._index.get(action.sender)
                if source is not None:
                    self._sync(node, source)
            elif isinstance(action, Refused):
                self.refusals.append((node, action.reason))

    def _send(self, src: int, dst: int, data: bytes) -> None:
        if not self._linked(src, dst) or self.rng.random() < self.faults.drop:
            return
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            self.at(self.now + self._delay(), lambda: self._deliver(src, dst, data))

    def _deliver(self, src: int, dst: int, data: bytes) -> None:
        if not self._linked(src, dst):
            return
        decoded = self._decoded.get(data)
        if decoded is None:
            try:
                decoded = decode(data)
            except ConsensusError as exc:
                decoded = exc
            self._decoded[data] = decoded
        if isinstance(decoded, ConsensusError):
            self.refusals.append((dst, decoded))
            return
        self._apply(dst, self.machines[dst].handle(decoded))

    def _timer(self, node: int, machine: QbftMachine, action: SetTimer) -> None:
        if self._up[node] and self.machines[node] is machine:
            self._apply(node, machine.timer_expired(action.height, action.round))

    def _build(self, node: int, action: BuildBlock) -> None:
        if not self._up[node]:
            return
        payload = f"txs of node {node} for {action.height}/{action.round}".encode()
        block = self.ops.make(action.height, action.round, self.addresses[node], payload)
        self.record_build(block, node)
        self._apply(node, self.machines[node].block_built(block))

    def _decide(self, node: int, decision: Decision) -> None:
        self.decisions[node][decision.height] = decision
        machine = self.machines[node]
        self._apply(node, machine.start_height(decision.height + 1))
        self._work(node)

    def _status(self, node: int) -> None:
        """Tell every peer our height; a peer behind syncs from us. Repeats every ``status_interval``."""
        for peer in self.peers(node):
            if self._linked(node, peer) and self.rng.random() >= self.faults.drop:
                self.at(self.now + self._delay(), partial(self._on_status, peer, node))
        self.at(self.now + self.status_interval, partial(self._status, node))

    def _on_status(self, node: int, source: int) -> None:
        if self._up[node] and self.height_of(source) > self.height_of(node):
            self._sync(node, source)

    def _sync(self, node: int, source: int) -> None:
        """Fetch the blocks ``node`` lacks from ``source`` (one request at a time), as ``new_block`` inputs."""
        if self._syncing[node]:
            return
        self._syncing[node] = True

        def arrive() -> None:
            self._syncing[node] = False
            if not self._linked(source, node):
                return
            while (decision := self.decisions[source].get(self.machines[node].height)) is not None:
                before = self.machines[node].height
                self._apply(node, self.machines[node].new_block(decision.block, decision.seals), synced=True)
                if self.machines[node].height == before:
                    return

        self.at(self.now + 2 * self._delay(), arrive)
