"""The node: admission, mempool, adaptive block proposer, durable store, over the revm engine.

One proposer thread seals blocks. When the mempool is empty it sleeps; a transaction
wakes it and is sealed at once (a one-transaction block: lowest latency). While a
block is being executed and written, new transactions queue, and the next block takes
all of them up to the block gas limit: the batch grows with the load by itself.

The proposer hands each sealed block to a writer thread, which has the store process
(:class:`node.store.StoreWriter`) commit it while the proposer executes the next one.
A block is visible (receipts, ``eth_blockNumber``, subscribers) only after that commit.
Admission never waits for execution: it reads a view of the accounts refreshed after
every block. Decoding and signature recovery run in a process pool over all cores
when many transactions arrive together (:meth:`Node.submit_many`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from coincurve import PrivateKey

from node.admission import (
    AlreadyKnown,
    ContractCreationNotPermitted,
    Genesis,
    InsufficientFundsForTransfer,
    MempoolFull,
    NonceTooHigh,
    NonceTooLow,
    Permissioning,
    SenderNotPermitted,
    check_static,
)
from node.backpressure import BackpressureConfig, DrainMeter, NodeOverloaded
from node.block import Block, BlockHeader, SealedReceipt, genesis_block, seal
from node.datadir import DataDirectoryLock
from node.engine.base import Account, EngineError, ExecutionReceipt, LogEntry, StateDiff, Transaction
from node.engine.revm import EMPTY_CODE_HASH, RevmEngine
from node.errors import NodeError
from node.hashing import address_of_public, keccak
from node.lifeline import die_with_parent, lifeline_args
from node.store import Store, StoredTransaction, StoreWriter
from node.txcodec import TransactionRejected, decode_transaction
from node.validators import next_validators

log = logging.getLogger("qkdchain.node")
T = TypeVar("T")

MEMPOOL_LIMIT = 100_000
MAX_NONCE_GAP = 64  # a transaction this far ahead of its sender's next nonce waits in the queue
MAX_QUEUED = 10_000
PARALLEL_DECODE_MIN = 64  # below this, decoding inline beats shipping to the pool
CLIENT_VERSION = "qkdchain/0.1.0/revm"
MAX_DRIFT_S = 15  # how far ahead of this node's clock a peer's block timestamp may be
OVERRIDE_CODE_KEPT = 32 * 1024 * 1024  # past this much override code, the read engine is rebuilt
MAX_TIME_OFFSET_S = 100 * 365 * 86_400  # the dev clock moves at most a century ahead (timestamps stay far below 2**63)
SEALED_AHEAD = 2  # blocks the proposer may run ahead of the store (written together in one commit)
PIPELINE_BLOCKS = SEALED_AHEAD + 2  # blocks of transactions the backlog may always hold
GROUP_COMMIT_MAX = 16  # blocks written in one store commit at most
COMMIT_GAS_GUESS = 200_000  # the gas limit a transaction is taken to have before any is seen
UNREAD_KEPT = 20_000  # durable writes kept for the reader before the writer loads them into it
DROPPED_KEPT = 10_000  # dropped transactions remembered (with their reason) for clients that ask


class NodeStopped(NodeError):
    """The node was closed."""


class GenesisMismatch(NodeError):
    """The data directory holds a chain with a different genesis."""


class InvalidBlock(NodeError):
    """A block (proposed or synced) does not match its re-execution."""


class StateNotKept(NodeError):
    """A read asked for the state of a block older than the node keeps (``--history-blocks``)."""

    def __init__(self, number: int, first: int, history_blocks: int | None) -> None:
        kept = f"the last {history_blocks} blocks (--history-blocks)" if history_blocks is not None else "history"
        super().__init__(f"the state of block {number} is not kept: this node keeps {kept} from block {first} on")
        self.number, self.first = number, first


class TimeOffsetOutOfRange(NodeError):
    """``evm_increaseTime`` would move the clock backwards or more than a century ahead."""


@dataclass(frozen=True)
class Built:
    """A block executed on top of the last final one, with everything the store needs."""

    block: Block
    receipts: list[SealedReceipt]
    raws: list[bytes]
    diff: StateDiff


@dataclass(frozen=True)
class Pending:
    tx: Transaction
    raw: bytes


BlockListener = Callable[[Block, list[SealedReceipt]], None]


@dataclass(frozen=True)
class AccountOverride:
    """What ``eth_call``'s state override sets on one account for one call (``None``: keep).

    ``state`` replaces the whole storage, ``state_diff`` only the slots it names.
    """

    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: dict[int, int] | None = None
    state_diff: dict[int, int] | None = None


def decode_chunk(raws: list[bytes], chain_id: int) -> list[Transaction | TransactionRejected]:
    out: list[Transaction | TransactionRejected] = []
    for raw in raws:
        try:
            out.append(decode_transaction(raw, chain_id))
        except TransactionRejected as exc:
            out.append(exc)
    return out


def _overridden(
    engine: RevmEngine, store: Store, overrides: dict[str, AccountOverride], fn: Callable[[RevmEngine], T]
) -> T:
    """``fn`` on ``engine`` with ``overrides`` loaded, everything they changed restored after."""
    changes = StateDiff()
    for address, wanted in overrides.items():
        was = engine.account(address)
        code_hash = was.code_hash
        if wanted.code is not None:
            code_hash = keccak(wanted.code) if wanted.code else EMPTY_CODE_HASH
            changes.code[code_hash] = wanted.code
        changes.accounts[address] = Account(
            was.nonce if wanted.nonce is None else wanted.nonce,
            was.balance if wanted.balance is None else wanted.balance,
            code_hash,
        )
        if wanted.state is not None:  # every slot the account may hold goes to zero first
            for slot in store.slots_of(address):
                changes.storage[(address, slot)] = 0
        for slot, value in {**(wanted.state or {}), **(wanted.state_diff or {})}.items():
            changes.storage[(address, slot)] = value
    before = StateDiff(
        accounts={a: engine.account(a) for a in changes.accounts},
        storage={(a, k): engine.storage(a, k) for a, k in changes.storage},
    )
    try:
        engine.load(changes)  # inside: a load that fails halfway is taken back too
        return fn(engine)
    finally:
        engine.load(before)


def address_of(key: PrivateKey) -> str:
    return address_of_public(key.public_key)


def _logs(receipts: list[SealedReceipt]) -> list[LogEntry]:
    return [entry for r in receipts for entry in r.execution.logs]


class Node:
    """A permissioned single-proposer node with a durable SQLite store.

    Args:
        data_dir: where ``chain.sqlite`` lives; an existing chain is resumed.
        genesis: required for a new chain; for an existing one it must match (or be ``None``).
        validator_key: the node's secp256k1 key; alone, its address must be a genesis validator.
        workers: processes for parallel signature recovery (0: decode inline).
        consensus: blocks come from QBFT among validators (:mod:`node.network` drives it);
            without it this node is the only validator and seals on its own.
        history_blocks: keep the state of only this many blocks below the head for
            historical reads (``None``: every block, an archive).
        backpressure: how many client transactions the mempool may hold, from the
            measured drain rate (:mod:`node.backpressure`); beyond it they are refused.

    Raises:
        DataDirectoryLocked: another node runs on ``data_dir``.
        StoreDamaged: the store lost acknowledged blocks or its state rows changed on disk.
        GenesisMismatch: ``data_dir`` holds another chain.
        NodeError: the validator key is not a validator of this chain.
    """

    def __init__(
        self,
        data_dir: Path,
        genesis: Genesis | None,
        validator_key: bytes,
        workers: int | None = None,
        consensus: bool = False,
        history_blocks: int | None = None,
        backpressure: BackpressureConfig | None = None,
    ) -> None:
        self._lock = DataDirectoryLock.acquire(data_dir)
        self.history_blocks = history_blocks
        self.drain = DrainMeter(backpressure)
        try:
            self._open(data_dir, genesis, validator_key, workers, consensus)
        except BaseException:
            self._lock.release()  # a refused start (damage, another genesis) leaves the directory free
            raise

    def _open(
        self, data_dir: Path, genesis: Genesis | None, validator_key: bytes, workers: int | None, consensus: bool
    ) -> None:
        self.store = Store(data_dir / "chain.sqlite")
        stored = self.store.get_meta("genesis")
        if stored is None:
            if genesis is None:
                raise GenesisMismatch(f"{data_dir} holds no chain and no genesis was given")
            self.store.set_meta("genesis", genesis.to_json())
        else:
            existing = Genesis.from_json(stored)  # type: ignore[arg-type]
            if genesis is not None and genesis.to_json() != existing.to_json():
                raise GenesisMismatch(f"{data_dir} holds a chain with another genesis")
            genesis = existing
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._key = PrivateKey(validator_key)
        self.proposer = address_of(self._key)
        if not consensus and genesis.validators and self.proposer not in genesis.validators:
            raise NodeError(f"{self.proposer} is not a validator of this chain")
        self.engine = RevmEngine(genesis.chain_id, genesis.base_fee, genesis.block_gas_limit, coinbase=self.proposer)
        # reads (eth_call, balances, ...) run on a second engine holding the last durable
        # state, so they never wait for, or hold up, the block being executed
        self._reader = RevmEngine(genesis.chain_id, genesis.base_fee, genesis.block_gas_limit)
        self._read_lock = threading.Lock()  # one read at a time on the reader
        self._readers_waiting = 0  # reads queued for the read lock (guarded by _cond)
        self._override_code = 0  # bytes of override code the read engine has been given
        self._unread_lock = threading.Lock()  # guards the two below, never held for long
        self._unread = StateDiff()  # durable writes the reader has not loaded yet
        self._reader_at = -1
        self.permissioning = Permissioning(genesis)
        self._time_offset = self._stored_time_offset()
        self.consensus = consensus

        head = self.store.head()
        if head is None:
            diff = StateDiff(accounts={a: Account(0, wei, EMPTY_CODE_HASH) for a, wei in genesis.alloc.items()})
            self.engine.load(diff)
            self._reader.load(diff)
            validators = tuple(sorted(v.lower() for v in genesis.validators)) or (self.proposer,)
            block = genesis_block(genesis.timestamp, genesis.block_gas_limit, genesis.base_fee, diff.commitment(),
                                  validators)  # fmt: skip
            self.store.append(block, [], [], diff)
            head = block
        else:
            state = self.store.load_state()
            self.engine.load(state)
            self._reader.load(state)
            log.info("resumed chain at block %d (0x%s)", head.number, head.hash.hex())
        self.head: Block = head

        self._tip: Block = head  # the last block built; ``head`` is the last one durable
        self._cond = threading.Condition()  # guards the mempool and the fields below
        self._engine_lock = threading.RLock()  # guards the engine (execution and reads)
        self._mempool: OrderedDict[bytes, Pending] = OrderedDict()  # by hash, in arrival order
        self._pending_nonce: dict[str, int] = {}
        self._view: dict[str, Account] = {}  # accounts after the last built block, for admission
        self._known: set[bytes] = set()
        self._queued: dict[str, dict[int, Pending]] = {}  # sender -> nonce -> waiting for a gap to fill
        self._queued_count = 0
        self._in_flight = 0  # transactions in blocks built or decided, not yet durable
        self._taken: dict[bytes, Pending] = {}  # those transactions, still pending for clients
        self._reserved = 0  # client transactions being decoded and admitted (room taken for them)
        self._gas_seen = float(COMMIT_GAS_GUESS)  # running mean of admitted transactions' gas limits
        self._rejected: OrderedDict[bytes, TransactionRejected | EngineError] = OrderedDict()
        self._mine_requests = 0
        self._listeners: list[BlockListener] = []
        self._running = True
        self._error: BaseException | None = None
        self._sealed: queue.Queue[Built | None] = queue.Queue(maxsize=SEALED_AHEAD)
        self._admitted: list[Callable[[bytes], None]] = []  # told of each transaction admitted here
        self.mine_hook: Callable[[], None] | None = None
        self.time_hook: Callable[[int], None] | None = None
        self.peers_hook: Callable[[], list[str]] | None = None  # a network: the peers linked now
        self._store_writer = StoreWriter(self.store.path, self._lock, self.history_blocks)
        workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool = (  # the workers die with the node, even after a kill -9
            ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=lifeline_args()) if workers > 1 else None
        )
        if self._pool is not None:  # fork the workers now, before this node starts its threads
            list(self._pool.map(decode_chunk, [[]] * workers, [self.chain_id] * workers))
        self._workers = workers
        self._proposer: threading.Thread | None = None
        if not consensus:  # a network's consensus driver seals instead (node.network)
            self._proposer = threading.Thread(target=self._propose_loop, name="proposer", daemon=True)
            self._proposer.start()
        self._writer = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._writer.start()

    # -- submission --

    def submit(self, raw: bytes, announce: bool = True) -> bytes:
        """Admit one raw transaction to the mempool and return its hash.

        Raises:
            TransactionRejected: a named refusal (decoding, signature, chain id, nonce, gas,
                funds, permission, duplicate, full pool, :class:`NodeOverloaded`); nothing changed.
        """
        result = self.submit_many([raw], announce)[0]  # one path: back-pressure, decoding, admission
        if isinstance(result, TransactionRejected):
            raise result
        return result

    def submit_many(self, raws: list[bytes], announce: bool = True) -> list[bytes | TransactionRejected]:
        """Admit many transactions, recovering signatures on all cores; in order, one result each.

        ``announce``: tell the :meth:`on_admitted` listeners (gossip); off for transactions
        that came from peers, which every validator already received from their origin.

        A client's batch (``announce``) is taken whole if the node's backlog is under its
        bound when it arrives (so the bound is passed by one batch at most, and a sender's
        nonces in it keep no gap), and refused whole with
        :class:`~node.backpressure.NodeOverloaded` otherwise, before anything is decoded.
        """
        reserved = len(raws) if announce else 0
        if reserved:
            try:
                self._reserve(reserved)
            except NodeOverloaded as refusal:
                return [refusal] * len(raws)  # one refusal answers them all
        try:
            decoded: list[Transaction | TransactionRejected]
            if self._pool is not None and len(raws) >= PARALLEL_DECODE_MIN:
                size = -(-len(raws) // (self._workers * 2))
                chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
                decoded = [d for part in self._pool.map(decode_chunk, chunks, [self.chain_id] * len(chunks))
                           for d in part]  # fmt: skip
            else:
                decoded = decode_chunk(raws, self.chain_id)
            results: list[bytes | TransactionRejected] = []
            for item, raw in zip(decoded, raws, strict=True):
                if isinstance(item, TransactionRejected):
                    results.append(item)
                    continue
                try:
                    results.append(self._admit(item, bytes(raw), announce))
                except TransactionRejected as exc:
                    results.append(exc)
            return results
        finally:
            if reserved:
                self._release(reserved)

    def _reserve(self, count: int) -> None:
        """Take room for ``count`` client transactions while they are decoded and admitted, so
        concurrent batches see each other (release with :meth:`_release`).

        Raises:
            NodeOverloaded: the backlog is at its bound.
        """
        with self._cond:
            backlog, limit = self.backlog, self.backlog_limit()
            if backlog >= limit:
                raise self.drain.refusal(backlog, limit)
            self._reserved += count

    def _release(self, count: int) -> None:
        with self._cond:
            self._reserved -= count

    def backlog_limit(self) -> int:
        """The backlog bound now: the drain in the target wait, at least the configured floor,
        and at least what keeps the pipeline full (:data:`PIPELINE_BLOCKS` full blocks of the
        transactions seen lately, by their gas limit: one being built, one waiting in the
        mempool, those being committed); a smaller bound leaves the proposer idle while the
        store commits, and the client waiting on its refusal."""
        per_block = self.genesis.block_gas_limit // max(21_000, int(self._gas_seen))
        return self.drain.limit(PIPELINE_BLOCKS * per_block)

    def _account(self, address: str) -> Account:
        """The account after the last built block (the engine is asked only on a miss)."""
        account = self._view.get(address)
        if account is None:
            with self._engine_lock:
                account = self._view[address] = self.engine.account(address)
        return account

    def _allowed(self, sender: str) -> bool:
        answer = self.permissioning.cached(sender)
        if answer is None:
            with self._engine_lock:
                answer = self.permissioning.allowed(self.engine, sender)
        return answer

    def _admit(self, tx: Transaction, raw: bytes, announce: bool = True) -> bytes:
        check_static(tx, self.genesis)
        if not self._allowed(tx.sender):
            raise SenderNotPermitted(tx.sender)
        if not self.permissioning.may_deploy(tx):
            raise ContractCreationNotPermitted(tx.sender)
        account = self._account(tx.sender)
        self._gas_seen += 0.05 * (tx.gas - self._gas_seen)  # a rough running mean: the bound's block size
        needed = tx.gas * tx.max_fee_per_gas + tx.value
        if account.balance < needed:
            raise InsufficientFundsForTransfer(tx.sender, needed, account.balance)
        with self._cond:
            if not self._running:
                raise NodeStopped("the node is stopped")
            if tx.tx_hash in self._known:  # included ones fail the nonce check below, as on geth
                raise AlreadyKnown(tx.tx_hash)
            if len(self._mempool) >= MEMPOOL_LIMIT:
                raise MempoolFull(len(self._mempool))
            expected = self._pending_nonce.get(tx.sender, account.nonce)
            if tx.nonce < expected:
                raise NonceTooLow(tx.sender, expected, tx.nonce)
            if tx.nonce > expected:
                backlog, limit = self.backlog, self.backlog_limit()
                if announce and backlog > limit:  # its gap is likely a refusal: retry it
                    raise self.drain.refusal(backlog, limit)
                self._queue(tx, raw, expected)
                return tx.tx_hash
            admitted = [Pending(tx, raw), *self._promoted(tx.sender, expected + 1)]
            for pending in admitted:
                self._known.add(pending.tx.tx_hash)
                self._mempool[pending.tx.tx_hash] = pending
            self._pending_nonce[tx.sender] = expected + len(admitted)
            self._cond.notify_all()
        if announce:
            for pending in admitted:
                for listener in self._admitted:
                    listener(pending.raw)
        return tx.tx_hash

    def _queue(self, tx: Transaction, raw: bytes, expected: int) -> None:
        """Hold a transaction whose nonce leaves a gap until the gap is filled, as geth and anvil
        do (``_cond`` held); bounded per sender and in all.

        Raises:
            NonceTooHigh: the gap is wider than :data:`MAX_NONCE_GAP`, or the queue is full.
        """
        parked = self._queued.setdefault(tx.sender, {})
        if tx.nonce - expected > MAX_NONCE_GAP or self._queued_count >= MAX_QUEUED or tx.nonce in parked:
            if not parked:
                del self._queued[tx.sender]
            raise NonceTooHigh(tx.sender, expected, tx.nonce)
        parked[tx.nonce] = Pending(tx, raw)
        self._known.add(tx.tx_hash)
        self._queued_count += 1

    def _promoted(self, sender: str, nonce: int) -> list[Pending]:
        """The queued transactions of ``sender`` from ``nonce`` on without a gap, taken out of the
        queue (``_cond`` held); queued ones below ``nonce`` can never run and are forgotten."""
        parked = self._queued.get(sender)
        if not parked:
            return []
        found: list[Pending] = []
        while nonce in parked:
            found.append(parked.pop(nonce))
            nonce += 1
        for stale in [n for n in parked if n < nonce]:
            self._known.discard(parked.pop(stale).tx.tx_hash)
            self._queued_count -= 1
        self._queued_count -= len(found)
        if not parked:
            del self._queued[sender]
        return found

    def on_admitted(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(raw)`` after each transaction enters this node's mempool (to gossip it)."""
        self._admitted.append(listener)

    # -- the proposer builds, the writer makes durable and publishes --

    def _propose_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._running and not self._mempool and not self._mine_requests:
                        self._cond.wait()
                    if not self._running:
                        return
                    self._mine_requests = max(0, self._mine_requests - 1)
                    batch = self.take()
                    for pending in batch:
                        del self._mempool[pending.tx.tx_hash]
                        self._taken[pending.tx.tx_hash] = pending
                    self._in_flight += len(batch)
                with self._engine_lock:
                    built = self.build(self._tip, batch, self._key, round_=0, undoable=False)
                if len(built.receipts) < len(batch):  # dropped ones left without a block
                    with self._cond:
                        self._in_flight -= len(batch) - len(built.receipts)
                self._tip = built.block
                self._sealed.put(built)  # blocks while SEALED_AHEAD blocks wait for the disk
        except BaseException as exc:  # a bug: stop admitting, surface it
            self._fail(exc)
        finally:
            self._sealed.put(None)

    def take(self) -> list[Pending]:
        """The mempool's head up to the block gas limit, left in place (lock held)."""
        batch: list[Pending] = []
        gas = 0
        for pending in self._mempool.values():
            if gas + pending.tx.gas > self.genesis.block_gas_limit:
                break
            gas += pending.tx.gas
            batch.append(pending)
        return batch

    def next_timestamp(self, parent: Block) -> int:
        return max(parent.header.timestamp, int(time.time()) + self._time_offset)  # non-decreasing, as anvil

    def build(self, parent: Block, batch: list[Pending], key: PrivateKey, round_: int, undoable: bool) -> Built:
        """Execute ``batch`` on top of ``parent`` (the engine's state) and seal the block (engine lock held).

        A transaction that can no longer run (revoked sender, nonce or funds gone) is dropped
        and reported; ``undoable`` keeps what the block overwrites, for :meth:`undo`.
        """
        number = parent.number + 1
        timestamp = self.next_timestamp(parent)
        proposer = address_of(key)
        self.engine.begin_block(number, timestamp, coinbase=proposer, undoable=undoable)
        self.permissioning.changed = False
        receipts: list[SealedReceipt] = []
        raws: list[bytes] = []
        cumulative = 0
        for pending in batch:
            tx = pending.tx
            if not self.permissioning.allowed(self.engine, tx.sender):
                self._drop(tx, SenderNotPermitted(tx.sender))
                continue
            try:
                executed: ExecutionReceipt = self.engine.execute(tx)
            except EngineError as exc:
                self._drop(tx, exc)
                continue
            self.permissioning.observe(executed.logs)
            cumulative += executed.gas_used
            price = min(tx.max_fee_per_gas, self.genesis.base_fee + tx.max_priority_fee_per_gas)
            receipts.append(SealedReceipt(tx.tx_hash, tx.sender, tx.to, len(receipts), cumulative, price, executed))
            raws.append(pending.raw)
        diff = self.engine.end_block()
        if not undoable:
            self._view.update(diff.accounts)
        validators = parent.header.validators  # a lone node stays its chain's only validator
        if self.consensus:
            validators = next_validators(validators, self.genesis.registry, _logs(receipts))
        block = seal(key, parent.hash, number, timestamp, self.genesis.block_gas_limit,
                     self.genesis.base_fee, receipts, diff.commitment(), validators, round_)  # fmt: skip
        if not self.consensus:  # alone, the proposer's signature is the one commit seal
            block = Block(block.header, block.signature, block.tx_hashes, (block.signature,))
        return Built(block, receipts, raws, diff)

    def decode_known(self, raws: list[bytes]) -> list[Transaction]:
        """Decode a block's raw transactions, reusing those already admitted here (no second
        signature recovery for what the mempool holds).

        Raises:
            TransactionRejected: a raw transaction that does not decode or recover.
        """
        with self._cond:
            known = [self._mempool.get(keccak(raw)) for raw in raws]
        return [
            p.tx if p is not None and p.raw == raw else decode_transaction(raw, self.chain_id)
            for p, raw in zip(known, raws, strict=True)
        ]

    def replay(self, parent: Block, header: BlockHeader, txs: list[Transaction], raws: list[bytes]) -> Built:
        """Re-execute a block someone else built, on top of ``parent`` (engine lock held).

        Returns the block as this node computes it, with ``header``'s round, proposer and
        timestamp, its writes left in the engine and undoable: the caller compares hashes and
        calls :meth:`undo` if they differ (or to keep the state final only once decided).

        Raises:
            InvalidBlock: a transaction cannot run here, or the header is impossible.
        """
        if header.number != parent.number + 1 or header.parent_hash != parent.hash:
            raise InvalidBlock(f"block {header.number} does not extend {parent.number} (0x{parent.hash.hex()})")
        if header.timestamp < parent.header.timestamp or header.timestamp > self.next_timestamp(parent) + MAX_DRIFT_S:
            raise InvalidBlock(f"block {header.number}: timestamp {header.timestamp} is out of range")
        if header.gas_limit != self.genesis.block_gas_limit or header.base_fee != self.genesis.base_fee:
            raise InvalidBlock(f"block {header.number}: gas limit or base fee differ from the genesis")
        self.engine.begin_block(header.number, header.timestamp, coinbase=header.proposer, undoable=True)
        self.permissioning.changed = False
        receipts: list[SealedReceipt] = []
        cumulative = 0
        try:
            for tx in txs:
                if not self.permissioning.allowed(self.engine, tx.sender) or not self.permissioning.may_deploy(tx):
                    raise InvalidBlock(f"block {header.number}: sender {tx.sender} is not permitted")
                try:
                    executed = self.engine.execute(tx)
                except EngineError as exc:
                    raise InvalidBlock(f"block {header.number}: 0x{tx.tx_hash.hex()} cannot run: {exc}") from exc
                self.permissioning.observe(executed.logs)
                cumulative += executed.gas_used
                price = min(tx.max_fee_per_gas, self.genesis.base_fee + tx.max_priority_fee_per_gas)
                receipts.append(SealedReceipt(tx.tx_hash, tx.sender, tx.to, len(receipts), cumulative, price, executed))
        except InvalidBlock:
            self.engine.end_block()
            self.undo()
            raise
        diff = self.engine.end_block()
        validators = next_validators(parent.header.validators, self.genesis.registry, _logs(receipts))
        mine = seal(self._key, parent.hash, header.number, header.timestamp, self.genesis.block_gas_limit,
                    self.genesis.base_fee, receipts, diff.commitment(), validators, header.round)  # fmt: skip
        ours = replace(mine.header, proposer=header.proposer)
        return Built(Block(ours, b"", mine.tx_hashes), receipts, list(raws), diff)

    def undo(self) -> None:
        """Take back the last undoable block's state (engine lock held): nothing of it stays."""
        self.engine.rollback_block()
        if self.permissioning.changed:  # answers read from the undone state: forget them
            self.permissioning.reset()

    def finalize(self, built: Built) -> None:
        """A final block: its state becomes the node's and it goes to the store (consensus thread).

        The caller has the block's writes in the engine (a replay not undone) or passes them
        here to be loaded; the transactions it includes leave the mempool.
        """
        self._view.update(built.diff.accounts)
        with self._cond:
            for r in built.receipts:
                taken = self._mempool.pop(r.tx_hash, None)
                if taken is not None:
                    self._taken[r.tx_hash] = taken
            self._in_flight += len(built.receipts)
        self._tip = built.block
        self._sealed.put(built)

    def take_mine_request(self) -> bool:
        """Consume one ``evm_mine`` request (a network's proposer seals even an empty block)."""
        with self._cond:
            if not self._mine_requests:
                return False
            self._mine_requests -= 1
            return True

    @property
    def mine_pending(self) -> bool:
        return self._mine_requests > 0

    def apply(self, built: Built) -> None:
        """Load a decided block's writes into the engine (engine lock held); undone replays leave none."""
        self.engine.load(built.diff)
        self.permissioning.observe(tuple(_logs(built.receipts)))

    @property
    def tip(self) -> Block:
        """The last block built (solo) or decided (network); :attr:`head` is the last one durable."""
        return self._tip

    def _write_loop(self) -> None:
        """Make sealed blocks durable, then visible: the blocks that queued while the last
        commit ran go to the store together, in one commit (group commit: one ``fsync``)."""
        stopping = False
        while not stopping:
            group = [self._sealed.get()]
            while group[-1] is not None and len(group) < GROUP_COMMIT_MAX:
                try:
                    group.append(self._sealed.get_nowait())
                except queue.Empty:
                    break
            stopping = group[-1] is None
            blocks = [b for b in group if b is not None]
            try:  # durable first
                if blocks:
                    self._store_writer.append_many([(b.block, b.receipts, b.raws, b.diff) for b in blocks])
            except BaseException as exc:  # a full disk: stop, and say why
                self._fail(exc)
                return
            if not blocks:
                continue
            with self._unread_lock:  # the whole group at once: no receipt readable above the head
                for built in blocks:
                    self._unread.update(built.diff)
                self.head = blocks[-1].block
            drained = sum(len(b.receipts) for b in blocks)
            with self._cond:  # the drain: what became durable, sampled while a backlog lasts
                self._in_flight -= drained
                self.drain.taken(drained, time.monotonic(), self.backlog > 0)
                for built in blocks:
                    for r in built.receipts:
                        self._known.discard(r.tx_hash)
                        self._taken.pop(r.tx_hash, None)
                self._cond.notify_all()
            for built in blocks:
                for listener in list(self._listeners):
                    listener(built.block, built.receipts)
            self._fold_unread()

    def _fail(self, exc: BaseException) -> None:
        log.exception("node stopped: %s", exc)
        with self._cond:
            self._error, self._running = exc, False
            self._cond.notify_all()

    def _drop(self, tx: Transaction, reason: TransactionRejected | EngineError) -> None:
        """A transaction admitted earlier can no longer be included (e.g. revoked since)."""
        log.warning("dropped 0x%s from %s: %s: %s", tx.tx_hash.hex(), tx.sender, type(reason).__name__, reason)
        with self._cond:
            self._mempool.pop(tx.tx_hash, None)
            self._known.discard(tx.tx_hash)
            self._taken.pop(tx.tx_hash, None)
            self._pending_nonce.pop(tx.sender, None)  # recomputed from state on next admission
            self._rejected[tx.tx_hash] = reason
            while len(self._rejected) > DROPPED_KEPT:
                self._rejected.popitem(last=False)
            self._cond.notify_all()

    def dropped(self, tx_hash: bytes) -> TransactionRejected | EngineError | None:
        """Why an admitted transaction was dropped before inclusion (``None``: it was not)."""
        with self._cond:
            return self._rejected.get(tx_hash)

    def pending(self, tx_hash: bytes) -> Pending | None:
        """The transaction if it waits in the mempool, in a block not yet durable, or in the
        queue (a nonce gap before it)."""
        with self._cond:
            found = self._mempool.get(tx_hash) or self._taken.get(tx_hash)
            if found is None and tx_hash in self._known:
                found = next((p for q in self._queued.values() for p in q.values() if p.tx.tx_hash == tx_hash), None)
            return found

    # -- waiting and listening --

    def subscribe(self, listener: BlockListener) -> None:
        """Call ``listener(block, receipts)`` after each block is durable (on the proposer thread)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: BlockListener) -> None:
        self._listeners.remove(listener)

    def wait(self, tx_hash: bytes, timeout_s: float = 30.0) -> StoredTransaction:
        """Block until ``tx_hash`` is in a durable block.

        Raises:
            TransactionRejected, EngineError: the transaction was dropped before inclusion.
            TimeoutError: not included within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                stored = self.store.transaction(tx_hash)
                if stored is not None:
                    return stored
                if tx_hash in self._rejected:
                    raise self._rejected[tx_hash]
                if self._error is not None:
                    raise NodeStopped(f"the proposer stopped: {self._error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"0x{tx_hash.hex()} not included within {timeout_s} s")
                self._cond.wait(remaining)

    def mine(self) -> Block:
        """Seal a block now, even an empty one (``evm_mine``)."""
        with self._cond:
            target = self._tip.number + 1
            self._mine_requests += 1
            self._cond.notify_all()
        if self.mine_hook is not None:  # a network: ask consensus for a block
            self.mine_hook()
        with self._cond:
            while self.head.number < target and self._running:
                self._cond.wait(5.0)
            return self.head

    def _stored_time_offset(self) -> int:
        stored = self.store.get_meta("time_offset") or 0
        if not isinstance(stored, int) or not 0 <= stored <= MAX_TIME_OFFSET_S:  # written by an older version
            log.warning("ignoring a stored dev clock offset out of range (%r s); the clock starts at 0", stored)
            return 0
        return stored

    def increase_time(self, seconds: int) -> int:
        """Move the clock of future blocks forward (``evm_increaseTime``); returns the total offset.

        Raises:
            TimeOffsetOutOfRange: ``seconds`` is negative, or the total would pass a century.
        """
        with self._cond:
            if not 0 <= seconds <= MAX_TIME_OFFSET_S - self._time_offset:
                raise TimeOffsetOutOfRange(
                    f"the clock moves forward only, by at most {MAX_TIME_OFFSET_S} s in all"
                    f" ({self._time_offset} s used); asked {seconds}"
                )
            self._time_offset += seconds
            self.store.set_meta("time_offset", self._time_offset)
            offset = self._time_offset
        if self.time_hook is not None:  # a network: every validator must accept the new clock
            self.time_hook(offset)
        return offset

    def adopt_time_offset(self, offset: int) -> None:
        """A peer moved the dev clock: follow it (never backwards)."""
        with self._cond:
            if self._time_offset < offset <= MAX_TIME_OFFSET_S:
                self._time_offset = offset
                self.store.set_meta("time_offset", offset)

    def request_mine(self) -> None:
        """A peer asked for a block now (``evm_mine`` on a network)."""
        with self._cond:
            self._mine_requests += 1

    # -- state reads (serialised with execution) --

    def pending_nonce(self, address: str) -> int:
        with self._cond:
            pending = self._pending_nonce.get(address)
        return self._account(address).nonce if pending is None else pending

    def read(self, fn: Callable[[RevmEngine], T]) -> T:
        """Run ``fn`` on the state of the last durable block (:attr:`head`).

        Reads run on an engine of their own, so a long ``eth_call`` never holds the lock the
        proposer executes under; one read runs at a time. revm holds the GIL while it runs,
        so when other reads queue behind it, a read that took more than a millisecond keeps
        the read slot (not the GIL) as long again: back-to-back heavy reads get at most half
        the interpreter, and the proposer, admission and the writer the rest.
        """
        return self.read_at(None, fn)

    def read_at(
        self, number: int | None, fn: Callable[[RevmEngine], T], overrides: dict[str, AccountOverride] | None = None
    ) -> T:
        """Run ``fn`` on the state of block ``number`` (``None`` or the head: :meth:`read`),
        with ``overrides`` (``eth_call``'s state override) set for the call only.

        An older block's state is the head's with every account and slot written since put
        back to its value then (from the store's history); both that and the overrides are
        taken back afterwards.

        Raises:
            StateNotKept: ``number`` is below the first block whose state is kept.
        """
        with self._cond:
            self._readers_waiting += 1
        with self._read_lock:
            with self._cond:
                self._readers_waiting -= 1
            started = time.perf_counter()
            try:
                if not overrides:
                    return self._read(number, fn)
                self._override_code += sum(len(o.code or b"") for o in overrides.values())
                return self._read(number, lambda engine: _overridden(engine, self.store, overrides, fn))
            finally:
                if self._override_code > OVERRIDE_CODE_KEPT:
                    self._fresh_reader()
                ran = time.perf_counter() - started
                if ran > 0.001 and self._readers_waiting:  # heavy reads back to back: share the interpreter
                    time.sleep(ran)

    def _fresh_reader(self) -> None:
        """A new read engine from the store (read lock held): revm keeps every code it was ever
        given, so overridden code would otherwise pile up for good."""
        with self._unread_lock:
            reader = RevmEngine(self.genesis.chain_id, self.genesis.base_fee, self.genesis.block_gas_limit)
            reader.load(self.store.load_state())
            self._reader, self._unread, self._reader_at, self._override_code = reader, StateDiff(), -1, 0

    def _catch_up_reader(self) -> Block:
        """Load the durable writes the reader has not seen (read lock held); returns the head
        they bring it to."""
        with self._unread_lock:
            head, unread, self._unread = self.head, self._unread, StateDiff()
        if unread.accounts or unread.storage or unread.code:
            self._reader.load(unread)
        return head

    def _fold_unread(self) -> None:
        """Past :data:`UNREAD_KEPT` pending writes, load them into the reader now if no read is
        running (writer thread): a node that is written to and never read would otherwise keep
        every write twice, once in that pending diff."""
        if len(self._unread.storage) + len(self._unread.accounts) > UNREAD_KEPT and self._read_lock.acquire(
            blocking=False
        ):
            try:
                self._catch_up_reader()
            finally:
                self._read_lock.release()

    def _read(self, number: int | None, fn: Callable[[RevmEngine], T]) -> T:
        """``fn`` on the reader, brought up to the head first (read lock held)."""
        head = self._catch_up_reader()
        if number is None or number >= head.number:  # explicit numbers: the head at the time they were read
            if self._reader_at != head.number:
                self._reader.begin_block(head.number, head.header.timestamp, coinbase=head.header.proposer)
                self._reader_at = head.number
            return fn(self._reader)
        self.check_kept(number)
        block = self.store.block_by_number(number)
        assert block is not None  # below the head, at or above the history floor
        then = self.store.state_at(number)
        now = StateDiff(
            accounts={a: self._reader.account(a) for a in then.accounts},
            storage={(a, k): self._reader.storage(a, k) for a, k in then.storage},
        )
        self._reader.load(then)
        self._reader.begin_block(number, block.header.timestamp, coinbase=block.header.proposer)
        self._reader_at = -1
        try:
            return fn(self._reader)
        finally:
            self._reader.load(now)

    def check_kept(self, number: int) -> None:
        """Raises :class:`StateNotKept` if block ``number``'s state is no longer kept."""
        first = self.store.history_from()
        if number < first:
            raise StateNotKept(number, first, self.history_blocks)

    def processes(self) -> dict[str, list[int]]:
        """The node's processes by role (this one, the store writer, the recovery workers), for
        benchmarks that account CPU time to each."""
        workers = list(getattr(self._pool, "_processes", None) or {})  # the executor keeps them by pid
        return {"node": [os.getpid()], "store": [self._store_writer.pid], "recovery": workers}

    @property
    def backlog(self) -> int:
        """Transactions admitted and not yet durable (the mempool's, the nonce-gap queue's,
        those in blocks built but not yet committed) and those being admitted: what
        back-pressure bounds."""
        return len(self._mempool) + self._in_flight + self._reserved + self._queued_count

    @property
    def mempool_size(self) -> int:
        return len(self._mempool)

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._proposer is not None:
            self._proposer.join(timeout=30)
        else:
            self._sealed.put(None)
        self._writer.join(timeout=30)
        self._store_writer.close()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self.store.close()
        self._lock.release()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
