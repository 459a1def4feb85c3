"""A node in a validator network: QBFT decides blocks, the transport carries messages.

One consensus thread owns the QBFT state machine (:mod:`node.consensus.qbft`) and
everything that touches execution for it: building a proposal, executing someone
else's proposal, applying a decided block, syncing. Proposals are executed
*speculatively*: the engine keeps undo records, and the writes are taken back before
the engine lock is released, so JSON-RPC reads, admission and the store only ever see
final blocks. A decided block's writes are then loaded from the kept result (no second
execution) and it goes to the store like a solo node's block.

Frames on the transport (one byte of kind, then the payload):

- ``CONSENSUS``: a signed QBFT message, decoded (and its signer recovered) on the
  transport's delivery thread. Each unique ROUND-CHANGE, and every vote of a round > 0,
  is re-sent once to every peer but the one it came from, as Besu does, so once a round
  has failed a message reaches everyone while any path does. Round 0 on a full mesh
  relays nothing (relaying tripled the deliveries of a height on py-libp2p), and
  proposals (whole blocks) are never relayed: a validator that misses one still decides
  from the others' COMMITs or syncs the block;
- ``TRANSACTIONS``: raw transactions admitted here from clients, batched, sent to every
  peer (each node sends its own clients' transactions; peers admit without re-sending);
- ``HEAD``: the number of a block this node has made durable; a node behind syncs
  (announced only once the block is in the store, where a sync request will find it).
  Followers hear it for every block. Validators hear it once the chain has paused
  (``HEAD_QUIET_S`` without a newer block), and at most once a second while it runs: a
  validator that missed a block learns so from the next height's messages, and
  announcing every block to every validator was a third of a height's deliveries.

Requests: ``BLOCKS`` (from, count) answers final blocks with their seals and raw
transactions from the store; ``HEAD`` answers the durable head. A syncing node checks
each block's commit seals against the validator set of that height (the parent
header's ``validators``), re-executes it and compares the header hash (roots, state
commitment, next validators) before it is stored. Followers (nodes whose key is not a
validator) run no state machine; they sync on ``HEAD`` frames and serve JSON-RPC.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from coincurve import PrivateKey

from node import rlpcodec
from node.block import Block, BlockHeader, MalformedBlock, decode_block, encode_block
from node.consensus import qbft
from node.consensus.errors import ConsensusError
from node.consensus.finality import verify_finality
from node.consensus.messages import RoundChange, SignedMessage
from node.consensus.messages import decode as decode_message
from node.core import Built, InvalidBlock, Node, address_of
from node.errors import NodeError
from node.hashing import keccak
from node.p2p.errors import P2PError
from node.p2p.transport import Transport
from node.txcodec import TransactionRejected

log = logging.getLogger("qkdchain.network")

FRAME_CONSENSUS = 1
FRAME_TRANSACTIONS = 2
FRAME_HEAD = 3
FRAME_DEV = 4  # evm_mine / evm_increaseTime on a dev network: every validator follows
HEAD_FRAME = bytes([FRAME_HEAD])
REQUEST_BLOCKS = 16
REQUEST_HEAD = 17

SYNC_BATCH = 64  # blocks per sync request
SEEN_LIMIT = 50_000  # consensus message digests remembered for re-sending once
GOSSIP_BATCH = 2_000  # transactions per gossip frame
INCOMING_BATCHES = 256  # gossiped transaction batches waiting for admission
REGOSSIP_MAX_BYTES = 16 * 1024  # votes are relayed; a proposal (a whole block) only comes from its proposer
HEAD_QUIET_S = 0.25  # validators hear of our durable head once no newer block has followed it this long,
HEAD_EVERY_S = 1.0  # and at least this often (one far behind hears no messages it could act on)


class SyncFailed(NodeError):
    """A peer's blocks could not be verified or fetched."""


@dataclass(frozen=True)
class NetworkConfig:
    """Timers and limits of a validator node.

    Args:
        round_timeout_s: QBFT's first round timer; round r waits ``round_timeout_s * 2**r``.
        regossip: re-send each unique consensus message once to every peer.
        request_timeout_s: how long a sync request may take.
    """

    round_timeout_s: float = 2.0
    regossip: bool = True
    request_timeout_s: float = 10.0


def _differing(ours: BlockHeader, theirs: BlockHeader) -> str:
    """The header fields where our re-execution disagrees with a peer's block (for the log)."""
    return ", ".join(f for f in ours.__dataclass_fields__ if getattr(ours, f) != getattr(theirs, f)) or "nothing"


class _BlockOps:
    """What the QBFT machine needs to know about our blocks (see :class:`qbft.BlockOps`)."""

    def __init__(self, driver: NetworkNode) -> None:
        self._driver = driver

    def digest(self, block: bytes) -> bytes:
        return decode_block(block)[0].seal_digest

    def height(self, block: bytes) -> int:
        return decode_block(block)[0].number

    def round(self, block: bytes) -> int:
        return decode_block(block)[0].round

    def with_round(self, block: bytes, round: int) -> bytes:  # the spec's name
        header, _signature, _seals, raws = decode_block(block)
        restamped = header.with_round(round)
        signature = self._driver.key.sign_recoverable(restamped.seal_digest, hasher=None)
        return rlp.encode([restamped.fields(), signature, [], raws])  # type: ignore[no-any-return]

    def validate(self, block: bytes) -> bool:
        try:
            self._driver.execute_proposal(block)
        except (MalformedBlock, InvalidBlock, TransactionRejected) as exc:
            log.warning("refused proposal: %s", exc)
            return False
        return True


class NetworkNode:
    """Runs consensus, gossip and sync for ``node`` over ``transport``.

    Args:
        node: a :class:`~node.core.Node` made with ``consensus=True``.
        transport: started here; its address must be the node's key's address.
        key: the node's secp256k1 key (a validator's, or a follower's identity).
        config: timers and limits.
    """

    def __init__(self, node: Node, transport: Transport, key: bytes, config: NetworkConfig | None = None) -> None:
        if not node.consensus:
            raise NodeError("a network node needs a Node made with consensus=True")
        self.node = node
        self.transport = transport
        self.key = PrivateKey(key)
        self.address = address_of(self.key)
        self.config = config or NetworkConfig()
        self.ops = _BlockOps(self)
        self._inbox: queue.Queue[tuple[str, str, bytes | SignedMessage]] = queue.Queue()
        self._executed: dict[bytes, Built] = {}  # block hash (round-free) -> speculative result, this height
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._timers: dict[tuple[int, int], float] = {}
        self._machine: qbft.QbftMachine | None = None
        self._gossip: list[bytes] = []
        self._incoming: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=INCOMING_BATCHES)
        self._gossip_ready = threading.Condition()  # guards the gossip list and the head fields below
        self._durable = (-1, 0.0)  # the last block durable here, and when
        self._told = (-1, 0.0)  # the last head announced to validators, and when
        self._running = True
        self._work_queued = threading.Event()
        self._behind: tuple[str, int] | None = None  # a validator announced this head, beyond ours
        self._height_started = time.monotonic()
        self.decided = 0
        self.refused: dict[str, int] = {}
        self._threads = [
            threading.Thread(target=self._consensus_loop, name="consensus", daemon=True),
            threading.Thread(target=self._gossip_loop, name="gossip", daemon=True),
            threading.Thread(target=self._admit_loop, name="admit-gossip", daemon=True),
        ]

    # -- lifecycle --

    def start(self) -> NetworkNode:
        self.transport.start(self._on_frame, self._on_request)
        self.node.on_admitted(self._queue_gossip)
        # announced once durable, so a peer that syncs on it finds the block in our store
        self.node.subscribe(self._announce)
        self.node.mine_hook = self._mine
        self.node.peers_hook = self.transport.connected
        self.node.time_hook = lambda offset: self.transport.broadcast(
            bytes([FRAME_DEV]) + b"T" + offset.to_bytes(8, "big")
        )
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._running = False
        self._inbox.put(("stop", "", b""))
        with contextlib.suppress(queue.Full):
            self._incoming.put_nowait(None)
        with self._gossip_ready:
            self._gossip_ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self.transport.close()

    # -- the validator set --

    def validators(self, height: int) -> Sequence[str]:
        """The set that validates block ``height``: the parent header's ``validators``."""
        tip = self.node.tip
        if height > tip.number:
            return tip.header.validators  # a guess for future heights; checked again when they come
        parent = self.node.store.block_by_number(height - 1) if height >= 1 else None
        return parent.header.validators if parent is not None else tip.header.validators

    # -- the consensus thread --

    def _next_height(self) -> None:
        """Run consensus for the block after our tip (a follower's machine only watches)."""
        height = self.node.tip.number + 1
        self._height_started = time.monotonic()
        self._executed.clear()
        self._timers.clear()
        if self._machine is None:
            config = qbft.QbftConfig(base_timeout=self.config.round_timeout_s)
            self._machine = qbft.QbftMachine(self.key.secret, self.ops, self.validators, height, config)
        elif height > self._machine.height:
            self._act(self._machine.start_height(height))

    def _leads(self, sender: str, head: int) -> bool:
        """A validator announced a head beyond ours (anyone else's announcement could stall us)."""
        return head > self.node.tip.number and sender in self.validators(self.node.tip.number + 1)

    @property
    def is_validator(self) -> bool:
        return self._machine is not None and self._machine.is_validator

    def _consensus_loop(self) -> None:
        try:
            self._catch_up()
            self._next_height()
            if self.node.mempool_size:
                self._kick()
            while self._running:
                now = time.monotonic()
                wait = min(self._timers.values(), default=now + 1.0) - now
                try:
                    kind, sender, data = self._inbox.get(timeout=max(0.0, wait))
                except queue.Empty:
                    kind, sender, data = "tick", "", b""
                self._fire_timers()
                if kind == "stop":
                    return
                if kind == "msg" and self._machine is not None:
                    self._act(self._machine.handle(data))
                elif kind == "work":
                    self._work_queued.clear()
                    if self._machine is not None and (self.node.mempool_size or self.node.mine_pending):
                        self._act(self._machine.work_available())  # no work, no (empty) block
                elif kind == "head" and isinstance(data, bytes) and self._leads(sender, int.from_bytes(data, "big")):
                    self._behind = (sender, int.from_bytes(data, "big"))
                    self._sync_from(sender)
                elif self._behind is not None and self._behind[1] > self.node.tip.number:
                    self._sync_from(self._behind[0])  # the last attempt found less than announced: again
        except BaseException as exc:  # a bug: stop sealing, say why
            log.exception("consensus stopped: %s", exc)
            self.node._fail(exc)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        for (height, round_), deadline in list(self._timers.items()):
            if deadline <= now:
                del self._timers[(height, round_)]
                if self._machine is not None:
                    self._act(self._machine.timer_expired(height, round_))

    def _act(self, actions: list[qbft.Action]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, qbft.Broadcast):
                self._remember(keccak(action.data))
                self.transport.broadcast(bytes([FRAME_CONSENSUS]) + action.data)
            elif isinstance(action, qbft.SetTimer):
                self._timers[(action.height, action.round)] = time.monotonic() + action.seconds
            elif isinstance(action, qbft.BuildBlock):
                if self._machine is not None:
                    pending += self._machine.block_built(self._build(action.round))
            elif isinstance(action, qbft.Decide):
                self._decide(action.block, tuple(action.seals))
                return  # a new height: the old height's remaining actions are moot
            elif isinstance(action, qbft.FutureMessage):
                if action.height > self.node.tip.number + 1:
                    self._sync_from(action.sender)
                    return
            elif isinstance(action, qbft.Refused):
                self._count(action.reason)
                log.info("refused consensus message: %s", action.reason)

    def _build(self, round_: int) -> bytes:
        node = self.node
        with node._cond:
            batch = node.take()
        with node._engine_lock:
            built = node.build(node.tip, batch, self.key, round_, undoable=True)
            node.undo()
        self._executed[built.block.hash] = built  # the hash leaves the round out: re-proposals hit
        return encode_block(built.block, built.raws)

    def execute_proposal(self, data: bytes) -> Built:
        """Execute a proposed block on top of our final state and take it back; keep the result.

        Raises:
            MalformedBlock, TransactionRejected, InvalidBlock: the block is not valid here.
        """
        header, signature, _seals, raws = decode_block(data)
        key = header.hash
        if (built := self._executed.get(key)) is not None:
            return built
        node = self.node
        signer = Block(header, signature, ()).signer() if len(signature) == 65 else None
        if signer not in self.validators(header.number):
            raise InvalidBlock(f"block {header.number} is not signed by a validator")
        txs = node.decode_known(raws)
        if len({tx.tx_hash for tx in txs}) != len(txs):
            raise InvalidBlock(f"block {header.number} repeats a transaction")
        with node._engine_lock:
            built = node.replay(node.tip, header, txs, raws)
            node.undo()
        if built.block.hash != header.hash:
            raise InvalidBlock(
                f"block {header.number}: re-execution differs in {_differing(built.block.header, header)}"
            )
        self._executed[key] = built
        return built

    def _decide(self, data: bytes, seals: tuple[bytes, ...]) -> None:
        header, signature, _seals, _raws = decode_block(data)
        built = self.execute_proposal(data)
        block = Block(header, signature, built.block.tx_hashes, seals)
        final = Built(block, built.receipts, built.raws, built.diff)
        with self.node._engine_lock:
            self.node.apply(final)
        self.node.finalize(final)
        self.node.take_mine_request()  # on every node alike, so no request outlives its block
        self.decided += 1
        log.info(
            "decided",
            extra={"block": header.number, "round": header.round, "txs": len(built.receipts),
                   "gas_used": header.gas_used,
                   "height_ms": round((time.monotonic() - self._height_started) * 1000, 1)},
        )  # fmt: skip
        self._next_height()
        if self.node.mempool_size or self.node.mine_pending:
            self._kick()

    # -- sync --

    def _catch_up(self, deadline_s: float = 10.0) -> None:
        """At start: wait briefly for peers, ask their heads, fetch what we lack."""
        deadline = time.monotonic() + deadline_s
        while self._running and not self.transport.connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        for peer in self.transport.connected():
            try:
                head = int.from_bytes(self.transport.request(peer, bytes([REQUEST_HEAD]), 5.0)[:8], "big")
            except (P2PError, ValueError) as exc:
                log.info("no head from %s: %s", peer, exc)
                continue
            if head > self.node.tip.number:
                self._sync_from(peer)

    def _sync_from(self, peer: str) -> None:
        """Fetch, verify and store the blocks ``peer`` has beyond our tip."""
        if peer not in self.transport.connected():
            return
        while self._running:
            start = self.node.tip.number + 1
            request = bytes([REQUEST_BLOCKS]) + rlp.encode([start, SYNC_BATCH])
            try:
                reply = self.transport.request(peer, request, self.config.request_timeout_s)
                blocks = rlp.decode(reply)
            except (P2PError, rlp.exceptions.DecodingError) as exc:
                log.warning("sync from %s failed: %s", peer, exc)
                return
            if not isinstance(blocks, list) or not blocks:
                break
            for data in blocks:
                try:
                    self.import_block(data if isinstance(data, bytes) else b"")
                except (SyncFailed, MalformedBlock, InvalidBlock, TransactionRejected, ConsensusError) as exc:
                    self._count(exc)
                    log.warning("refused block from %s: %s", peer, exc)
                    return
            if len(blocks) < SYNC_BATCH:
                break
        if self._machine is not None:
            self._next_height()

    def import_block(self, data: bytes) -> Block:
        """Verify a final block from a peer (seals, then re-execution) and store it.

        Raises:
            MalformedBlock: the bytes are not a block.
            ConsensusError: too few, forged or repeated commit seals for the parent's validators.
            InvalidBlock, TransactionRejected: re-execution disagrees with the header.
        """
        header, signature, seals, raws = decode_block(data)
        node = self.node
        if header.number != node.tip.number + 1:
            raise SyncFailed(f"block {header.number} does not follow our tip {node.tip.number}")
        verify_finality(data, seals, node.tip.header.validators, self.ops)
        txs = node.decode_known(raws)
        with node._engine_lock:
            built = node.replay(node.tip, header, txs, raws)
            if built.block.hash != header.hash:
                node.undo()
                raise InvalidBlock(
                    f"block {header.number}: re-execution differs in {_differing(built.block.header, header)}"
                )
        block = Block(header, signature, built.block.tx_hashes, seals)
        node.finalize(Built(block, built.receipts, built.raws, built.diff))
        return block

    # -- the transport's threads --

    def _relays(self, message: SignedMessage, frame: bytes) -> bool:
        """Votes of a round > 0, and every ROUND-CHANGE, are relayed once.

        Round 0 of a height on a full mesh needs no relay: every validator hears every vote
        directly, and on py-libp2p relaying tripled the deliveries of a height. A round > 0
        means something went wrong (a dead proposer, a broken link), and from then on every
        vote is relayed, so a validator reachable through any path keeps the height live.
        """
        if not self.config.regossip or len(frame) > REGOSSIP_MAX_BYTES:
            return False
        return message.payload.round > 0 or isinstance(message.payload, RoundChange)

    def _count(self, reason: Exception | str) -> None:
        name = reason if isinstance(reason, str) else type(reason).__name__
        self.refused[name] = self.refused.get(name, 0) + 1

    def _remember(self, digest: bytes) -> bool:
        """True if ``digest`` is new (and remember it)."""
        with self._seen_lock:
            if digest in self._seen:
                return False
            self._seen[digest] = None
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            return True

    def _on_frame(self, sender: str, frame: bytes) -> None:
        if not frame:
            return
        kind, payload = frame[0], frame[1:]
        if kind == FRAME_CONSENSUS:
            if not self._remember(keccak(payload)):
                return
            try:
                message = decode_message(payload)  # here, not on the consensus thread
            except ConsensusError as exc:
                self._count(exc)
                log.info("refused consensus frame from %s: %s", sender, exc)
                return
            if self._relays(message, frame):
                for peer in self.transport.connected():
                    if peer != sender:  # the peer it came from has it
                        with contextlib.suppress(P2PError):
                            self.transport.send(peer, frame)
            self._inbox.put(("msg", sender, message))
        elif kind == FRAME_TRANSACTIONS:
            try:
                raws = rlpcodec.decode(payload)
            except rlpcodec.RlpError:
                log.info("malformed transaction frame from %s", sender)
                return
            if isinstance(raws, list):
                try:  # admitted on a thread of its own: votes never queue behind signature recovery
                    self._incoming.put_nowait([r for r in raws if isinstance(r, bytes)])
                except queue.Full:
                    self._count("IncomingTransactionsFull")
                    log.warning("dropped a batch of %d gossiped transactions: admission is behind", len(raws))
        elif kind == FRAME_HEAD and len(payload) == 8:
            self._inbox.put(("head", sender, payload))
        elif kind == FRAME_DEV and payload == b"M":
            self.node.request_mine()
            self._kick()
        elif kind == FRAME_DEV and len(payload) == 9 and payload[:1] == b"T":
            self.node.adopt_time_offset(int.from_bytes(payload[1:], "big"))

    def _on_request(self, sender: str, data: bytes) -> bytes:
        if data[:1] == bytes([REQUEST_HEAD]):
            return self.node.head.number.to_bytes(8, "big")
        if data[:1] == bytes([REQUEST_BLOCKS]):
            try:
                start, count = (int.from_bytes(x, "big") for x in rlp.decode(data[1:]))
            except (rlp.exceptions.DecodingError, TypeError, ValueError):
                return rlp.encode([])  # type: ignore[no-any-return]
            store = self.node.store
            blocks = []
            for number in range(start, start + min(count, SYNC_BATCH)):
                block = store.block_by_number(number)
                if block is None:
                    break
                blocks.append(encode_block(block, store.raws_of(number)))
            return rlp.encode(blocks)  # type: ignore[no-any-return]
        return b""

    # -- transaction gossip --

    def _queue_gossip(self, raw: bytes) -> None:
        with self._gossip_ready:
            self._gossip.append(raw)
            self._gossip_ready.notify()
        self._kick()

    def _announce(self, block: Block, _receipts: object) -> None:
        """A block is durable here (on the writer thread; never let it fail the writer).

        Followers hear of it at once: they sync on nothing else. Validators decided it
        themselves, as a rule; one that missed it learns it is behind from the next
        height's messages (:class:`qbft.FutureMessage`), so while blocks follow each
        other the announcement to them waits (see :meth:`_announce_to_validators`).
        """
        frame = HEAD_FRAME + block.number.to_bytes(8, "big")
        validators = self.node.tip.header.validators
        for peer in self.transport.connected():
            if peer not in validators:
                with contextlib.suppress(P2PError):
                    self.transport.send(peer, frame)
        with self._gossip_ready:
            self._durable = (block.number, time.monotonic())
            self._gossip_ready.notify()

    def _announce_to_validators(self) -> float:
        """Announce our durable head to every peer once no newer block has followed it for
        ``HEAD_QUIET_S``, or ``HEAD_EVERY_S`` after the last announcement (gossip thread);
        returns how long until that is due (``inf``: nothing new to announce).

        A validator that missed a block learns it is behind from the next height's
        messages while the chain is busy; when the chain stops, or when it is so far
        behind that it refuses those messages as too far ahead, this is how it learns.
        """
        with self._gossip_ready:
            number, at = self._durable
            told, told_at = self._told
            if number <= told:
                return float("inf")
            now = time.monotonic()
            left = min(at + HEAD_QUIET_S, told_at + HEAD_EVERY_S) - now
            if left > 0:
                return left
            self._told = (number, now)
        with contextlib.suppress(P2PError):
            self.transport.broadcast(HEAD_FRAME + number.to_bytes(8, "big"))
        return float("inf")

    def _mine(self) -> None:
        self.transport.broadcast(bytes([FRAME_DEV]) + b"M")
        self._kick()

    def _kick(self) -> None:
        """Tell the consensus thread transactions wait (one event however many arrive)."""
        if not self._work_queued.is_set():
            self._work_queued.set()
            self._inbox.put(("work", "", b""))

    def _admit_loop(self) -> None:
        """Admit transactions peers gossiped (signature recovery, nonce, funds, permission)."""
        while self._running:
            raws = self._incoming.get()
            if raws is None:
                return
            self.node.submit_many(raws, announce=False)  # refusals (known, nonce) are expected
            self._kick()

    def _gossip_loop(self) -> None:
        """Send admitted transactions to every peer, batched; re-send what waits too long;
        announce the durable head to validators once the chain pauses.

        A broadcast reaches only the peers connected at that moment, and a validator that
        never hears of a transaction never starts its round timer for it. So when
        transactions have waited a whole round timer without a new block, the oldest are
        announced again (peers that have them refuse them as known, quietly).
        """
        last_tip, stalled_since = -1, time.monotonic()
        while self._running:
            head_due = self._announce_to_validators()
            with self._gossip_ready:
                if self._running and not self._gossip:
                    self._gossip_ready.wait(min(self.config.round_timeout_s / 2, head_due))
                batch, self._gossip = self._gossip[:GOSSIP_BATCH], self._gossip[GOSSIP_BATCH:]
            tip = self.node.tip.number
            if tip != last_tip or not self.node.mempool_size:
                last_tip, stalled_since = tip, time.monotonic()
            elif not batch and time.monotonic() - stalled_since >= self.config.round_timeout_s:
                with self.node._cond:
                    batch = [p.raw for p in self.node.take()][:GOSSIP_BATCH]
                stalled_since = time.monotonic()
            if batch:
                self.transport.broadcast(bytes([FRAME_TRANSACTIONS]) + rlpcodec.encode(list(batch)))
