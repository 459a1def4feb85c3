"""The durable store: blocks, transactions, receipts, logs and state in one SQLite file.

WAL mode with ``synchronous=FULL``: :meth:`Store.append` returns only after the
block, its receipts and its state writes are on disk in a single transaction, so a
``kill -9`` loses nothing the node has acknowledged and never half a block. Each
thread reads through its own connection (WAL readers do not block the writer).

Damage is refused, never served (:class:`StoreDamaged`, with a recovery hint):

- **Lost blocks.** SQLite silently drops a truncated or deleted WAL's tail, so the
  evidence of what was acknowledged lives outside the database: after each durable
  commit, before the acknowledgement, :meth:`Store.append` writes the block's number
  and hash to ``chain.head`` (two checksummed slots, alternately overwritten: a torn
  write leaves the other slot). On open, a database whose head is below that mark, or
  holds another block at that height, is :class:`AcknowledgedBlocksMissing`. The mark
  is in the page cache at the acknowledgement, which a ``kill -9`` cannot lose; the
  store process ``fdatasync``-s it once no write has come for :data:`MARK_IDLE_S` and
  at least every second (:data:`MARK_SYNC_S`), not on the acknowledgement path, where a
  second fsync per block would double the commit latency (syncing whenever the request
  pipe was empty for an instant put it back there: the next block waited behind it,
  p50 20 ms per group commit at 1,000 tx/s against 12 ms after 20 ms of quiet). A power
  cut can thus lose up to a second of marks: detection then reaches back to the last
  synced mark, and never raises a false alarm (the mark is never ahead of the fsync-ed
  WAL).
- **Flipped bits in state.** Headers commit only to each block's write set, and the
  store keeps only current state, so the state cannot be re-derived from headers at
  load. Instead ``meta.state_digest`` is the sum (mod 2**64) of a CRC-32 of every
  account and storage row, updated in each block's own transaction (the rows a block
  overwrites are read first and subtracted). A CRC is what accidental damage calls for
  (any single flipped bit changes its row's CRC); it is no defence against someone
  who edits the file, who could rewrite the digest as well. :meth:`Store.load_state`, which reads every
  row anyway, re-folds it and refuses a mismatch (:class:`StateDigestMismatch`). Code
  rows are their own check (keyed by their keccak) and must exist for every account
  that names them.
- **History.** Each block's state writes are also kept per block (``account_history``,
  ``storage_history``), so any account, balance, nonce, code or storage slot can be read
  at any kept block: the value at block N is the last one written at or before N.
  ``meta.history_from`` is the first block whose state can be read; with a history limit
  (``history_blocks``) rows that a later row at or before the cut-off supersedes are
  deleted every :data:`PRUNE_EVERY` blocks, and ``history_from`` moves up.
- **An unreadable file** (SQLite's ``NOTADB``/``CORRUPT``) is :class:`DatabaseCorrupt`
  on any read or write, and a stored header whose hash differs from its own is too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from node import lifeline
from node.block import Block, BlockHeader, SealedReceipt
from node.engine.base import Account, LogEntry, StateDiff
from node.errors import NodeError
from node.hashing import keccak

if TYPE_CHECKING:
    from node.datadir import DataDirectoryLock

P = ParamSpec("P")
R = TypeVar("R")
BlockWrite = tuple[Block, list[SealedReceipt], list[bytes], StateDiff]  # a block and what the store keeps of it

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash BLOB UNIQUE NOT NULL, parent_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL, proposer TEXT NOT NULL, gas_limit INTEGER NOT NULL,
    gas_used INTEGER NOT NULL, base_fee INTEGER NOT NULL, tx_root BLOB NOT NULL,
    receipts_root BLOB NOT NULL, state_root BLOB NOT NULL, round INTEGER NOT NULL, validators TEXT NOT NULL,
    signature BLOB NOT NULL, seals BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    hash BLOB PRIMARY KEY, block INTEGER NOT NULL, idx INTEGER NOT NULL, raw BLOB NOT NULL,
    sender TEXT NOT NULL, recipient TEXT, status INTEGER NOT NULL, gas_used INTEGER NOT NULL,
    cumulative_gas INTEGER NOT NULL, gas_price INTEGER NOT NULL, contract TEXT, output BLOB NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transactions_block ON transactions (block, idx);
CREATE TABLE IF NOT EXISTS logs (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash BLOB NOT NULL, tx_index INTEGER NOT NULL,
    address TEXT NOT NULL, topics BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (block, log_index))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS logs_address ON logs (address, block);
CREATE TABLE IF NOT EXISTS accounts (address TEXT PRIMARY KEY, nonce INTEGER NOT NULL,
    balance BLOB NOT NULL, code_hash BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS storage (address TEXT NOT NULL, slot BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (address, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS code (hash BLOB PRIMARY KEY, code BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS account_history (address TEXT NOT NULL, block INTEGER NOT NULL, nonce INTEGER NOT NULL,
    balance BLOB NOT NULL, code_hash BLOB NOT NULL, PRIMARY KEY (address, block)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS account_history_block ON account_history (block);
CREATE TABLE IF NOT EXISTS storage_history (address TEXT NOT NULL, slot BLOB NOT NULL, block INTEGER NOT NULL,
    value BLOB NOT NULL, PRIMARY KEY (address, slot, block)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS storage_history_block ON storage_history (block);
"""

_BLOCK_COLUMNS = (
    "number, hash, parent_hash, timestamp, proposer, gas_limit, gas_used, base_fee, "
    "tx_root, receipts_root, state_root, round, validators, signature, seals"
)


MODULUS = 1 << 64
EMPTY_CODE_HASH = keccak(b"")
NO_BLOCK = bytes(32)  # the hash in a head mark written before any block was acknowledged
MARK_SYNC_S = 1.0  # the store process syncs the head mark when idle, and at least this often
MARK_IDLE_S = 0.02  # idle: no write came for this long
WAL_AUTOCHECKPOINT_PAGES = 16_384
"""A commit that takes the WAL past this many pages (64 MiB) copies it into the database.

SQLite's default is 1,000 pages, and one group of blocks of random-key inserts dirties
about that many, so nearly every commit also checkpointed: wrote its pages a second time
and fsync-ed the database file. Less often, a page dirtied by many blocks is copied once.
Measured with ``qkdchain bench node --long 60000``, runs alternating on one machine:
1,706-1,802 tx/s with the default, 1,876-2,140 with this (store CPU per transaction
215-233 µs against 199-226). A background checkpointer (PASSIVE every 0.25 s) did no
better on two busy cores: it copies hot pages many times over."""
_CHUNK = 512  # keys per ``IN (...)`` query (SQLite allows 32,766 parameters)
PRUNE_EVERY = 128  # with a history limit, superseded history rows are deleted every this many blocks


class StoreError(NodeError):
    """The database file is unusable or inconsistent with what was asked."""


class StoreDamaged(StoreError):
    """The data directory lost or changed data the node had written; the node must not start on it.

    Attributes:
        path: the database file.
        recovery: what the operator can do (also the end of the message).
    """

    recovery = (
        "restore the whole data directory from a backup, or move it aside, start with a fresh "
        "data directory and sync the chain from peers"
    )

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        super().__init__(f"{path}: {what}. To recover: {self.recovery}")


class AcknowledgedBlocksMissing(StoreDamaged):
    """Blocks acknowledged before the last stop are not in the database (lost WAL frames).

    Attributes:
        acknowledged: the number of the last block written to ``chain.head``.
        head: the database's highest block (``None``: no block at all).
    """

    def __init__(self, path: Path, acknowledged: int, head: int | None, what: str) -> None:
        self.acknowledged, self.head = acknowledged, head
        super().__init__(path, what)


class StateDigestMismatch(StoreDamaged):
    """The stored accounts, storage or code differ from what the blocks wrote (flipped bits)."""


class DatabaseCorrupt(StoreDamaged):
    """SQLite cannot read the file (not a database, or a malformed page), or a stored header is altered."""


def _sqlite_failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """The named error for an SQLite failure: damage for ``CORRUPT``/``NOTADB``, else a plain one."""
    if (getattr(exc, "sqlite_errorname", None) or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return DatabaseCorrupt(path, f"is not a usable node database: {exc}")
    return StoreError(f"{path}: {exc}")


def _named_failures(method: Callable[P, R]) -> Callable[P, R]:
    """Let no raw ``sqlite3`` exception out of a :class:`Store` method (see :func:`_sqlite_failure`)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, Store)
            raise _sqlite_failure(store.path, exc) from exc

    return wrapper


@dataclass(frozen=True)
class StoredTransaction:
    """A transaction as included: raw bytes plus where it landed and what it did."""

    tx_hash: bytes
    raw: bytes
    sender: str
    to: str | None
    block_number: int
    block_hash: bytes
    index: int
    status: int
    gas_used: int
    cumulative_gas: int
    effective_gas_price: int
    contract_address: str | None
    output: bytes
    logs: tuple[tuple[int, LogEntry], ...]  # (log index in block, log)
    block_timestamp: int


@dataclass(frozen=True)
class StoredLog:
    block_number: int
    block_hash: bytes
    log_index: int
    tx_hash: bytes
    tx_index: int
    log: LogEntry
    block_timestamp: int


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _topics(blob: bytes) -> tuple[bytes, ...]:
    return tuple(blob[i : i + 32] for i in range(0, len(blob), 32))


@dataclass(frozen=True)
class HeadMark:
    """The last block a store acknowledged, as kept outside the database."""

    number: int
    block_hash: bytes  # NO_BLOCK: nothing acknowledged yet

    @property
    def acknowledges(self) -> bool:
        return self.block_hash != NO_BLOCK


class HeadMarker:
    """``chain.head`` beside the database: two 64-byte slots, magic + number + hash + CRC-32.

    Block ``n`` goes to slot ``n % 2`` with one ``pwrite`` (:meth:`sync` makes it durable),
    so a torn write damages only that slot and the other still holds the block before.
    """

    SLOT = 64
    MAGIC = b"QKDH"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._dirty = False

    def read(self) -> HeadMark | None:
        """The highest valid mark; ``None`` if there is no file.

        Raises:
            ValueError: the file exists but holds no valid slot.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        marks = [m for i in (0, 1) if (m := self._decode(data[i * self.SLOT : (i + 1) * self.SLOT])) is not None]
        if not marks:
            raise ValueError(f"{self.path} holds no valid head mark")
        return max(marks, key=lambda m: (m.number, m.acknowledges))

    def create(self) -> None:
        """Write a file that acknowledges nothing, durably (before the first block is marked)."""
        nothing = self._encode(HeadMark(0, NO_BLOCK))
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, nothing + nothing)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_directory(self.path.parent)

    def write(self, number: int, block_hash: bytes) -> None:
        """Mark block ``number`` acknowledged (in the page cache; the file must exist)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        os.pwrite(self._fd, self._encode(HeadMark(number, block_hash)), (number % 2) * self.SLOT)
        self._dirty = True

    def sync(self) -> None:
        """Make the last mark durable (``fdatasync``; nothing to do if it is)."""
        if self._fd is not None and self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                if self._dirty:
                    os.fdatasync(fd)
            os.close(fd)

    def _encode(self, mark: HeadMark) -> bytes:
        body = self.MAGIC + mark.number.to_bytes(8, "big") + mark.block_hash
        return (body + zlib.crc32(body).to_bytes(4, "big")).ljust(self.SLOT, b"\0")

    def _decode(self, slot: bytes) -> HeadMark | None:
        body, crc = slot[:44], slot[44:48]
        if len(slot) != self.SLOT or not body.startswith(self.MAGIC) or zlib.crc32(body).to_bytes(4, "big") != crc:
            return None
        return HeadMark(int.from_bytes(body[4:12], "big"), body[12:44])


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _account_leaf(address: str, nonce: int, balance: bytes, code_hash: bytes) -> int:
    return zlib.crc32(f"A{address}{nonce}|".encode() + balance + code_hash)


def _storage_leaf(address: str, slot: bytes, value: bytes) -> int:
    return zlib.crc32(f"S{address}|".encode() + slot + value)


def _chunks(items: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """Slices of at most ``_CHUNK`` keys, each padded (repeating its last key) to a power of two,
    with the matching ``?,?,...``: a handful of distinct statements, all in SQLite's statement
    cache, instead of one to prepare per block (``IN`` ignores the repeats)."""
    for i in range(0, len(items), _CHUNK):
        chunk = items[i : i + _CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()
        yield chunk + chunk[-1:] * (size - len(chunk)), ",".join("?" * size)


class Store:
    """One SQLite database file holding the whole chain, and ``chain.head`` beside it.

    Args:
        path: the database file (created with its directory if missing).

    Raises:
        DatabaseCorrupt: SQLite cannot read the file.
        AcknowledgedBlocksMissing: blocks marked in ``chain.head`` are missing or differ.
        StoreDamaged: ``chain.head`` is unreadable, or missing while the database says it was kept.
        StoreError: another SQLite failure (I/O, permissions), or a pre-seals database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.marker = HeadMarker(path.with_suffix(".head"))
        self._marked = False  # the marker file is known to exist
        try:  # the mark first: a store process still finishing a block only moves the database ahead of it
            self.mark = self.marker.read()
        except (OSError, ValueError) as exc:
            raise StoreDamaged(path, f"the head mark {self.marker.path} is unreadable ({exc})") from exc
        try:
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if self.mark is not None and self.mark.acknowledges and "blocks" not in tables:
                    raise AcknowledgedBlocksMissing(
                        path, self.mark.number, None,
                        f"the database holds no blocks, but block {self.mark.number} was acknowledged "
                        "(a lost or deleted WAL)",
                    )  # fmt: skip
                db.executescript(SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(blocks)")}
                if "seals" not in columns:
                    raise StoreError(f"{path} was written by an older qkdchain (no commit seals); use a new data dir")
                self._check_head(db)
                if db.execute("SELECT 1 FROM meta WHERE key = 'history_from'").fetchone() is None:
                    _start_history(db)
        except sqlite3.Error as exc:
            self.close()
            raise _sqlite_failure(path, exc) from exc
        except BaseException:
            self.close()
            raise

    def _check_head(self, db: sqlite3.Connection) -> None:
        if self.mark is None:
            if db.execute("SELECT 1 FROM meta WHERE key = 'state_digest'").fetchone():
                raise StoreDamaged(self.path, f"the head mark {self.marker.path} was deleted")
            return  # a new store, or one from before head marks: the first append creates it
        if not self.mark.acknowledges:
            return
        n = self.mark.number
        row = db.execute("SELECT hash FROM blocks WHERE number = ?", (n,)).fetchone()
        if row is None:
            top = db.execute("SELECT MAX(number) FROM blocks").fetchone()[0]
            first = 0 if top is None else top + 1
            missing = f"block {n} was" if first == n else f"blocks {first}..{n} were"
            ends = "holds no blocks" if top is None else f"ends at block {top}"
            raise AcknowledgedBlocksMissing(
                self.path, n, top, f"the database {ends}, but {missing} acknowledged (WAL frames lost or truncated)"
            )  # fmt: skip
        if bytes(row[0]) != self.mark.block_hash:
            raise AcknowledgedBlocksMissing(
                self.path, n, n, f"block {n} is not the one acknowledged (0x{self.mark.block_hash.hex()})"
            )

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB: random-key inserts stay in memory
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        self.marker.close()

    # -- meta --

    @_named_failures
    def get_meta(self, key: str) -> object | None:
        """The JSON value stored under ``key`` (``None`` if absent).

        Raises:
            DatabaseCorrupt: the stored value is not JSON, or SQLite cannot read it.
        """
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value: object = json.loads(row[0])
        except (TypeError, ValueError) as exc:
            raise DatabaseCorrupt(self.path, f"meta value {key!r} is not JSON ({exc})") from exc
        return value

    @_named_failures
    def set_meta(self, key: str, value: object) -> None:
        with self._write_lock:
            self._db().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- writing a block: everything in one durable transaction --

    def append(
        self,
        block: Block,
        receipts: list[SealedReceipt],
        raws: list[bytes],
        diff: StateDiff,
        sync_mark: bool = True,
        history_blocks: int | None = None,
    ) -> None:
        """Write ``block`` with its transactions, receipts, logs and state writes, durably, then mark it.

        ``sync_mark``: also ``fdatasync`` the mark now; the store process passes false and
        calls :meth:`sync_mark` off the acknowledgement path. ``history_blocks``: keep the
        state of only that many blocks below the head (``None``: every block).

        Raises:
            StoreError: the write failed (nothing of the block is stored), or the mark could
                not be written after a durable commit (the block is stored, not acknowledged).
        """
        self.append_many([(block, receipts, raws, diff)], sync_mark, history_blocks)

    @_named_failures
    def append_many(self, items: list[BlockWrite], sync_mark: bool = True, history_blocks: int | None = None) -> None:
        """Write consecutive blocks in one durable transaction (group commit), then mark the last.

        Each block's rows are written as :meth:`append` writes them; the commit and its
        ``fsync`` are paid once for all of them, and the pages they share (the tails of
        the block-ordered tables, B-tree interiors) are written once.

        Raises:
            StoreError: the write failed (none of the blocks is stored), or the mark could
                not be written after a durable commit (they are stored, not acknowledged).
        """
        if not items:
            return
        db = self._db()
        with self._write_lock:
            if not self._marked and not self.marker.path.exists():  # before the first commit keeping a digest
                self.marker.create()
            self._marked = True
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'state_digest'").fetchone()
                digest = int(json.loads(row[0]), 16) if row else _fold(db)  # once, for a store from before digests
                for item in items:
                    digest = self._write_block(db, item, digest, history_blocks)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('state_digest', ?)", (json.dumps(f"{digest:016x}"),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            last = items[-1][0]
            try:
                self.marker.write(last.number, last.hash)
                if sync_mark:
                    self.marker.sync()
            except OSError as exc:
                raise StoreError(
                    f"block {last.number} is stored but {self.marker.path} cannot be written: {exc}"
                ) from exc

    def _write_block(self, db: sqlite3.Connection, item: BlockWrite, digest: int, history_blocks: int | None) -> int:
        """One block's rows, inside the open transaction; returns the state digest after it."""
        block, receipts, raws, diff = item
        h, block_hash = block.header, block.hash  # the hash is an RLP encoding: once
        accounts = [(a, x.nonce, _word(x.balance), x.code_hash) for a, x in diff.accounts.items()]
        storage = [(a, _word(k), _word(v)) for (a, k), v in diff.storage.items()]
        digest = self._updated_digest(db, digest, accounts, storage)
        db.execute(
            f"INSERT INTO blocks ({_BLOCK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                h.number, block_hash, h.parent_hash, h.timestamp, h.proposer, h.gas_limit,
                h.gas_used, h.base_fee, h.tx_root, h.receipts_root, h.state_root, h.round,
                ",".join(h.validators), block.signature, b"".join(block.seals),
            ),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO transactions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.tx_hash, h.number, r.index, raw, r.sender, r.to, r.execution.status,
                    r.execution.gas_used, r.cumulative_gas, r.effective_gas_price,
                    r.execution.contract_address, r.execution.output,
                )
                for r, raw in zip(receipts, raws, strict=True)
            ],
        )  # fmt: skip
        db.executemany("INSERT INTO logs VALUES (?,?,?,?,?,?,?)", _log_rows(h.number, receipts))
        db.executemany("INSERT OR REPLACE INTO accounts VALUES (?,?,?,?)", accounts)
        db.executemany("INSERT OR REPLACE INTO storage VALUES (?,?,?)", storage)
        db.executemany("INSERT OR IGNORE INTO code VALUES (?,?)", list(diff.code.items()))
        db.executemany(
            "INSERT OR REPLACE INTO account_history VALUES (?,?,?,?,?)",
            [(a, h.number, nonce, balance, code_hash) for a, nonce, balance, code_hash in accounts],
        )
        db.executemany(
            "INSERT OR REPLACE INTO storage_history VALUES (?,?,?,?)",
            [(a, slot, h.number, value) for a, slot, value in storage],
        )
        if history_blocks is not None and h.number % PRUNE_EVERY == 0:
            _prune_history(db, h.number - history_blocks)
        return digest

    def sync_mark(self) -> None:
        """Make the last head mark durable.

        Raises:
            StoreError: the ``fdatasync`` failed.
        """
        with self._write_lock:
            try:
                self.marker.sync()
            except OSError as exc:
                raise StoreError(f"{self.marker.path} cannot be synced: {exc}") from exc

    def _updated_digest(
        self,
        db: sqlite3.Connection,
        digest: int,
        accounts: list[tuple[str, int, bytes, bytes]],
        storage: list[tuple[str, bytes, bytes]],
    ) -> int:
        """``digest`` once these rows are written (inside the block's transaction, before its writes)."""
        for chunk, marks in _chunks([a for a, *_ in accounts]):
            query = f"SELECT address, nonce, balance, code_hash FROM accounts WHERE address IN ({marks})"
            digest -= sum(_account_leaf(*old) for old in db.execute(query, chunk))
        digest += sum(_account_leaf(*new) for new in accounts)
        by_address: dict[str, list[bytes]] = {}
        for a, slot, _ in storage:
            by_address.setdefault(a, []).append(slot)
        for a, slots in by_address.items():  # ``address = ? AND slot IN``: a row-value IN would scan the table
            for chunk, marks in _chunks(slots):
                query = f"SELECT address, slot, value FROM storage WHERE address = ? AND slot IN ({marks})"
                digest -= sum(_storage_leaf(*old) for old in db.execute(query, [a, *chunk]))
        digest += sum(_storage_leaf(*new) for new in storage)
        return digest % MODULUS

    # -- state, for restarts --

    @_named_failures
    def load_state(self) -> StateDiff:
        """Every account, storage slot and code, checked against the state digest.

        Raises:
            StateDigestMismatch: a row differs from what the blocks wrote, is unreadable, or
                code an account names is missing or altered.
            DatabaseCorrupt: SQLite cannot read the tables.
        """
        db = self._db()
        diff = StateDiff()
        folded = 0
        db.execute("BEGIN")  # the rows and the digest from one snapshot
        try:
            try:
                for address, nonce, balance, code_hash in db.execute("SELECT * FROM accounts"):
                    folded += _account_leaf(address, nonce, balance, code_hash)
                    diff.accounts[address] = Account(nonce, int.from_bytes(balance, "big"), bytes(code_hash))
                for address, slot, value in db.execute("SELECT * FROM storage"):
                    folded += _storage_leaf(address, slot, value)
                    diff.storage[(address, int.from_bytes(slot, "big"))] = int.from_bytes(value, "big")
                for code_hash, code in db.execute("SELECT * FROM code"):
                    if keccak(code) != code_hash:
                        raise StateDigestMismatch(self.path, f"stored code 0x{bytes(code_hash).hex()} is altered")
                    diff.code[bytes(code_hash)] = bytes(code)
            except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # a flip changed a value's type
                raise StateDigestMismatch(self.path, f"a state row is unreadable ({exc})") from exc
            row = db.execute("SELECT value FROM meta WHERE key = 'state_digest'").fetchone()
        finally:
            db.execute("COMMIT")
        named = {x.code_hash for x in diff.accounts.values()} - {EMPTY_CODE_HASH} - diff.code.keys()
        if named:
            raise StateDigestMismatch(self.path, f"code 0x{min(named).hex()} named by an account is missing")
        if row is None:
            if self.mark is not None and self.mark.acknowledges:
                raise StateDigestMismatch(self.path, "the state digest is missing")
            return diff  # a store from before digests: the next block establishes one
        try:
            stored = int(json.loads(row[0]), 16)
        except (TypeError, ValueError) as exc:
            raise StateDigestMismatch(self.path, f"the state digest is unreadable ({exc})") from exc
        if stored != folded % MODULUS:
            raise StateDigestMismatch(
                self.path, "the accounts, storage or code differ from what the blocks wrote (a flipped bit?)"
            )
        return diff

    # -- history --

    @_named_failures
    def history_from(self) -> int:
        """The first block whose state can still be read."""
        value = self.get_meta("history_from")
        return int(value) if isinstance(value, int) else 0

    @_named_failures
    def account_at(self, address: str, number: int) -> Account:
        """``address`` as it was after block ``number`` (an empty account if never written)."""
        row = (
            self._db()
            .execute(
                "SELECT nonce, balance, code_hash FROM account_history WHERE address = ? AND block <= ?"
                " ORDER BY block DESC LIMIT 1",
                (address, number),
            )
            .fetchone()
        )
        return Account(row[0], int.from_bytes(row[1], "big"), bytes(row[2])) if row else Account(0, 0, EMPTY_CODE_HASH)

    @_named_failures
    def storage_at(self, address: str, slot: int, number: int) -> int:
        row = (
            self._db()
            .execute(
                "SELECT value FROM storage_history WHERE address = ? AND slot = ? AND block <= ?"
                " ORDER BY block DESC LIMIT 1",
                (address, _word(slot), number),
            )
            .fetchone()
        )
        return int.from_bytes(row[0], "big") if row else 0

    @_named_failures
    def slots_of(self, address: str) -> set[int]:
        """Every storage slot ``address`` holds or ever held."""
        rows = self._db().execute(
            "SELECT slot FROM storage WHERE address = ?1 UNION SELECT slot FROM storage_history WHERE address = ?1",
            (address,),
        )
        return {int.from_bytes(slot, "big") for (slot,) in rows}

    @_named_failures
    def code(self, code_hash: bytes) -> bytes:
        row = self._db().execute("SELECT code FROM code WHERE hash = ?", (code_hash,)).fetchone()
        return bytes(row[0]) if row else b""

    @_named_failures
    def state_at(self, number: int) -> StateDiff:
        """What every account and slot written after block ``number`` held after it: applied over
        the current state, it gives the state of block ``number`` (read from one snapshot)."""
        db = self._db()
        then = StateDiff()
        db.execute("BEGIN")
        try:
            for (address,) in db.execute("SELECT DISTINCT address FROM account_history WHERE block > ?", (number,)):
                then.accounts[address] = self.account_at(address, number)
            rows = db.execute("SELECT DISTINCT address, slot FROM storage_history WHERE block > ?", (number,))
            for address, slot in rows.fetchall():
                key = int.from_bytes(slot, "big")
                then.storage[(address, key)] = self.storage_at(address, key, number)
            for account in then.accounts.values():
                if account.code_hash != EMPTY_CODE_HASH and account.code_hash not in then.code:
                    then.code[account.code_hash] = self.code(account.code_hash)
        finally:
            db.execute("COMMIT")
        return then

    # -- reads --

    @_named_failures
    def head(self) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
        return self._block(row) if row else None

    @_named_failures
    def block_by_number(self, number: int) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE number = ?", (number,)).fetchone()
        return self._block(row) if row else None

    @_named_failures
    def block_by_hash(self, block_hash: bytes) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return self._block(row) if row else None

    def _block(self, row: tuple[Any, ...]) -> Block:
        number, block_hash, *rest, validators, signature, seals = row
        try:
            header = BlockHeader(number, *rest, tuple(validators.split(",")) if validators else ())  # type: ignore[arg-type, call-arg]
            intact = header.hash == block_hash
        except (TypeError, ValueError, AttributeError) as exc:
            raise DatabaseCorrupt(self.path, f"block {number}: the stored header is unreadable ({exc})") from exc
        if not intact:
            raise DatabaseCorrupt(self.path, f"block {number}: the stored header does not match its hash")
        hashes = self._db().execute("SELECT hash FROM transactions WHERE block = ? ORDER BY idx", (number,))
        seal_list = tuple(bytes(seals[i : i + 65]) for i in range(0, len(seals), 65))
        return Block(header, bytes(signature), tuple(bytes(h) for (h,) in hashes), seal_list)

    @_named_failures
    def transaction(self, tx_hash: bytes) -> StoredTransaction | None:
        db = self._db()
        row = db.execute(
            "SELECT t.hash, t.raw, t.sender, t.recipient, t.block, b.hash, t.idx, t.status, t.gas_used,"
            " t.cumulative_gas, t.gas_price, t.contract, t.output, b.timestamp"
            " FROM transactions t JOIN blocks b ON b.number = t.block WHERE t.hash = ?",
            (tx_hash,),
        ).fetchone()
        if row is None:
            return None
        logs = tuple(
            (index, LogEntry(address, _topics(topics), bytes(data)))
            for index, address, topics, data in db.execute(
                "SELECT log_index, address, topics, data FROM logs WHERE block = ? AND tx_index = ? ORDER BY log_index",
                (row[4], row[6]),
            )
        )
        h, raw, sender, to, number, block_hash, idx, status, gas_used, cumulative, price, contract, output, ts = row
        return StoredTransaction(
            bytes(h), bytes(raw), sender, to, number, bytes(block_hash), idx, status, gas_used, cumulative, price,
            contract, bytes(output), logs, ts,
        )  # fmt: skip

    @_named_failures
    def raws_of(self, number: int) -> list[bytes]:
        """The raw transactions of block ``number`` in order (what a syncing peer re-executes)."""
        rows = self._db().execute("SELECT raw FROM transactions WHERE block = ? ORDER BY idx", (number,))
        return [bytes(raw) for (raw,) in rows]

    @_named_failures
    def receipts_of(self, number: int) -> Iterator[StoredTransaction]:
        rows = self._db().execute("SELECT hash FROM transactions WHERE block = ? ORDER BY idx", (number,))
        hashes = [bytes(tx_hash) for (tx_hash,) in rows]
        return (stored for tx_hash in hashes if (stored := self.transaction(tx_hash)) is not None)

    @_named_failures
    def logs(self, first: int, last: int, addresses: Iterable[str] | None) -> list[StoredLog]:
        """Logs of blocks ``first..last`` (inclusive), optionally only from ``addresses``."""
        query = (
            "SELECT l.block, b.hash, l.log_index, l.tx_hash, l.tx_index, l.address, l.topics, l.data, b.timestamp"
            " FROM logs l JOIN blocks b ON b.number = l.block WHERE l.block BETWEEN ? AND ?"
        )
        params: list[object] = [first, last]
        if addresses is not None:
            wanted = list(addresses)
            query += f" AND l.address IN ({','.join('?' * len(wanted))})"
            params += wanted
        rows = self._db().execute(query + " ORDER BY l.block, l.log_index", params)
        return [
            StoredLog(n, bytes(bh), li, bytes(th), ti, LogEntry(a, _topics(t), bytes(d)), ts)
            for n, bh, li, th, ti, a, t, d, ts in rows
        ]


def _fold(db: sqlite3.Connection) -> int:
    """The state digest of the tables as they are (a full pass)."""
    total = sum(_account_leaf(*row) for row in db.execute("SELECT address, nonce, balance, code_hash FROM accounts"))
    total += sum(_storage_leaf(*row) for row in db.execute("SELECT address, slot, value FROM storage"))
    return total % MODULUS


def _start_history(db: sqlite3.Connection) -> None:
    """A new store keeps history from block 0; one written before history was kept starts it
    at its head, from the current state."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM meta WHERE key = 'history_from'").fetchone() is None:  # the other process won
            top = db.execute("SELECT MAX(number) FROM blocks").fetchone()[0]
            if top is not None:
                db.execute("INSERT OR IGNORE INTO account_history SELECT address, ?, nonce, balance, code_hash"
                           " FROM accounts", (top,))  # fmt: skip
                db.execute("INSERT OR IGNORE INTO storage_history SELECT address, slot, ?, value FROM storage", (top,))
            db.execute("INSERT INTO meta VALUES ('history_from', ?)", (json.dumps(top or 0),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _prune_history(db: sqlite3.Connection, cutoff: int) -> None:
    """Delete the history rows no read at or after block ``cutoff`` needs (inside the block's transaction)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'history_from'").fetchone()
    if cutoff <= (int(json.loads(row[0])) if row else 0):
        return
    db.execute(
        "DELETE FROM account_history WHERE block < ?1 AND EXISTS (SELECT 1 FROM account_history AS later"
        " WHERE later.address = account_history.address AND later.block > account_history.block AND later.block <= ?1)",
        (cutoff,),
    )
    db.execute(
        "DELETE FROM storage_history WHERE block < ?1 AND EXISTS (SELECT 1 FROM storage_history AS later"
        " WHERE later.address = storage_history.address AND later.slot = storage_history.slot"
        " AND later.block > storage_history.block AND later.block <= ?1)",
        (cutoff,),
    )
    db.execute("INSERT OR REPLACE INTO meta VALUES ('history_from', ?)", (json.dumps(cutoff),))


def _log_rows(number: int, receipts: list[SealedReceipt]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for r in receipts:
        for log in r.execution.logs:
            rows.append((number, len(rows), r.tx_hash, r.index, log.address, b"".join(log.topics), log.data))
    return rows


class StoreWriter:
    """Appends blocks from a process of its own (``python -m node.store``).

    SQLite's per-row work holds the GIL; beside the proposer's execution in the same
    process the two threads hand the GIL back and forth and both slow down. In a
    separate process the writes run on the other core. :meth:`append` returns when the
    child has committed (WAL, ``synchronous=FULL``) and marked the block in ``chain.head``,
    so acknowledgement still follows durability.

    The child dies with the node (:func:`node.lifeline.die_with_parent`; the node's ends
    of the pipes are kept from forked children, so it also sees end-of-file), and holds a
    copy of the data directory ``lock`` until it exits, so no second node writes while a
    block is still being committed.
    """

    def __init__(self, path: Path, lock: DataDirectoryLock | None = None, history_blocks: int | None = None) -> None:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        lock_fd = lock.fileno() if lock is not None else -1
        parent_pid, kernel_signal = lifeline.lifeline_args()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "node.store", str(path), str(child_read), str(child_write), str(parent_pid),
                 str(int(kernel_signal)), str(lock_fd), str(-1 if history_blocks is None else history_blocks)],
                pass_fds=(child_read, child_write) + ((lock_fd,) if lock_fd >= 0 else ()),
            )  # fmt: skip
        finally:
            os.close(child_read)
            os.close(child_write)
        for fd in (parent_read, parent_write):
            lifeline.keep_from_forks(fd)
        self._fds = (parent_read, parent_write)
        self._send = Connection(parent_write, readable=False)
        self._recv = Connection(parent_read, writable=False)

    @property
    def pid(self) -> int:
        return self._process.pid

    def append(self, block: Block, receipts: list[SealedReceipt], raws: list[bytes], diff: StateDiff) -> None:
        """Have the store process write and mark ``block``; returns once it is durable.

        Raises:
            StoreError: the write failed or the store process is gone.
        """
        self.append_many([(block, receipts, raws, diff)])

    def append_many(self, items: list[BlockWrite]) -> None:
        """Have the store process write consecutive blocks in one commit and mark the last;
        returns once they are durable.

        Raises:
            StoreError: the write failed (none of them is stored) or the store process is gone.
        """
        try:
            self._send.send(items)
            failure = self._recv.recv()
        except (EOFError, OSError) as exc:
            raise StoreError(f"the store process is gone: {exc}") from exc
        if failure is not None:
            raise StoreError(failure)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send.send(None)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()  # it holds the directory lock until it is gone
        for fd in self._fds:
            lifeline.forget(fd)
        self._send.close()
        self._recv.close()


def _serve_writes(path: Path, requests: Connection, replies: Connection, history_blocks: int | None = None) -> None:
    try:
        store = Store(path)
    except NodeError as exc:  # the node checked the same files a moment ago; say why in one line
        print(f"store process: {exc}", file=sys.stderr)
        sys.exit(2)
    synced = time.monotonic()
    while True:
        try:
            if time.monotonic() - synced >= MARK_SYNC_S or not requests.poll(MARK_IDLE_S):  # idle, or a second passed
                store.sync_mark()
                synced = time.monotonic()
            item = requests.recv()
        except (EOFError, OSError):
            return  # the node is gone; whatever was committed stays committed
        except StoreError as exc:
            print(f"store process: {exc}", file=sys.stderr)
            return  # the node sees the pipe close and stops
        if item is None:
            store.close()
            return
        try:
            store.append_many(item, sync_mark=False, history_blocks=history_blocks)
        except Exception as exc:  # report, keep serving: the node decides to stop
            reply: str | None = f"{type(exc).__name__}: {exc}"
        else:
            reply = None
        try:
            replies.send(reply)
        except OSError:
            return  # the node died while the block was being written


if __name__ == "__main__":
    lifeline.die_with_parent(int(sys.argv[4]), sys.argv[5] == "1")
    _serve_writes(
        Path(sys.argv[1]),
        Connection(int(sys.argv[2]), writable=False),
        Connection(int(sys.argv[3]), readable=False),
        int(sys.argv[7]) if len(sys.argv) > 7 and int(sys.argv[7]) >= 0 else None,
    )
