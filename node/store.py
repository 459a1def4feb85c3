"""The durable store: blocks, transactions, receipts, logs and state in one SQLite file.

WAL mode with ``synchronous=FULL``: :meth:`Store.append` returns only after the
block, its receipts and its state writes are on disk in a single transaction, so a
``kill -9`` loses nothing the node has acknowledged and never half a block. Each
thread reads through its own connection (WAL readers do not block the writer).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from node.block import Block, BlockHeader, SealedReceipt
from node.engine.base import Account, LogEntry, StateDiff
from node.errors import NodeError

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
"""

_BLOCK_COLUMNS = (
    "number, hash, parent_hash, timestamp, proposer, gas_limit, gas_used, base_fee, "
    "tx_root, receipts_root, state_root, round, validators, signature, seals"
)


class StoreError(NodeError):
    """The database file is unusable or inconsistent with what was asked."""


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


@dataclass(frozen=True)
class StoredLog:
    block_number: int
    block_hash: bytes
    log_index: int
    tx_hash: bytes
    tx_index: int
    log: LogEntry


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _topics(blob: bytes) -> tuple[bytes, ...]:
    return tuple(blob[i : i + 32] for i in range(0, len(blob), 32))


class Store:
    """One SQLite database file holding the whole chain.

    Args:
        path: the database file (created with its directory if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(blocks)")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable node database: {exc}") from exc
        if "seals" not in columns:
            raise StoreError(f"{path} was written by an older qkdchain (no commit seals); use a new data dir")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB: random-key inserts stay in memory
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- meta --

    def get_meta(self, key: str) -> object | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        with self._write_lock:
            self._db().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- writing a block: everything in one durable transaction --

    def append(self, block: Block, receipts: list[SealedReceipt], raws: list[bytes], diff: StateDiff) -> None:
        """Write ``block`` with its transactions, receipts, logs and state writes, durably."""
        h = block.header
        db = self._db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    f"INSERT INTO blocks ({_BLOCK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        h.number, block.hash, h.parent_hash, h.timestamp, h.proposer, h.gas_limit,
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
                db.executemany(
                    "INSERT OR REPLACE INTO accounts VALUES (?,?,?,?)",
                    [(a, x.nonce, _word(x.balance), x.code_hash) for a, x in diff.accounts.items()],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO storage VALUES (?,?,?)",
                    [(a, _word(k), _word(v)) for (a, k), v in diff.storage.items()],
                )
                db.executemany("INSERT OR IGNORE INTO code VALUES (?,?)", list(diff.code.items()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- state, for restarts --

    def load_state(self) -> StateDiff:
        db = self._db()
        diff = StateDiff()
        for address, nonce, balance, code_hash in db.execute("SELECT * FROM accounts"):
            diff.accounts[address] = Account(nonce, int.from_bytes(balance, "big"), bytes(code_hash))
        for address, slot, value in db.execute("SELECT * FROM storage"):
            diff.storage[(address, int.from_bytes(slot, "big"))] = int.from_bytes(value, "big")
        for code_hash, code in db.execute("SELECT * FROM code"):
            diff.code[bytes(code_hash)] = bytes(code)
        return diff

    # -- reads --

    def head(self) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
        return self._block(row) if row else None

    def block_by_number(self, number: int) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE number = ?", (number,)).fetchone()
        return self._block(row) if row else None

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        row = self._db().execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return self._block(row) if row else None

    def _block(self, row: tuple[Any, ...]) -> Block:
        number, block_hash, *rest, validators, signature, seals = row
        header = BlockHeader(number, *rest, tuple(validators.split(",")) if validators else ())  # type: ignore[arg-type, call-arg]
        if header.hash != block_hash:
            raise StoreError(f"block {number}: stored hash does not match its header")
        hashes = self._db().execute("SELECT hash FROM transactions WHERE block = ? ORDER BY idx", (number,))
        seal_list = tuple(bytes(seals[i : i + 65]) for i in range(0, len(seals), 65))
        return Block(header, bytes(signature), tuple(bytes(h) for (h,) in hashes), seal_list)

    def transaction(self, tx_hash: bytes) -> StoredTransaction | None:
        db = self._db()
        row = db.execute(
            "SELECT t.hash, t.raw, t.sender, t.recipient, t.block, b.hash, t.idx, t.status, t.gas_used,"
            " t.cumulative_gas, t.gas_price, t.contract, t.output"
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
        h, raw, sender, to, number, block_hash, idx, status, gas_used, cumulative, price, contract, output = row
        return StoredTransaction(
            bytes(h), bytes(raw), sender, to, number, bytes(block_hash), idx, status, gas_used, cumulative, price,
            contract, bytes(output), logs,
        )  # fmt: skip

    def raws_of(self, number: int) -> list[bytes]:
        """The raw transactions of block ``number`` in order (what a syncing peer re-executes)."""
        rows = self._db().execute("SELECT raw FROM transactions WHERE block = ? ORDER BY idx", (number,))
        return [bytes(raw) for (raw,) in rows]

    def receipts_of(self, number: int) -> Iterator[StoredTransaction]:
        hashes = self._db().execute("SELECT hash FROM transactions WHERE block = ? ORDER BY idx", (number,))
        for (tx_hash,) in hashes.fetchall():
            stored = self.transaction(bytes(tx_hash))
            if stored is not None:
                yield stored

    def logs(self, first: int, last: int, addresses: Iterable[str] | None) -> list[StoredLog]:
        """Logs of blocks ``first..last`` (inclusive), optionally only from ``addresses``."""
        query = (
            "SELECT l.block, b.hash, l.log_index, l.tx_hash, l.tx_index, l.address, l.topics, l.data"
            " FROM logs l JOIN blocks b ON b.number = l.block WHERE l.block BETWEEN ? AND ?"
        )
        params: list[object] = [first, last]
        if addresses is not None:
            wanted = list(addresses)
            query += f" AND l.address IN ({','.join('?' * len(wanted))})"
            params += wanted
        rows = self._db().execute(query + " ORDER BY l.block, l.log_index", params)
        return [
            StoredLog(n, bytes(bh), li, bytes(th), ti, LogEntry(a, _topics(t), bytes(d)))
            for n, bh, li, th, ti, a, t, d in rows
        ]


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
    child has committed (WAL, ``synchronous=FULL``), so acknowledgement still follows
    durability. If the node dies, the child sees its pipe close and exits.
    """

    def __init__(self, path: Path) -> None:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "node.store", str(path), str(child_read), str(child_write)],
            pass_fds=(child_read, child_write),
        )
        os.close(child_read)
        os.close(child_write)
        self._send = Connection(parent_write, readable=False)
        self._recv = Connection(parent_read, writable=False)

    def append(self, block: Block, receipts: list[SealedReceipt], raws: list[bytes], diff: StateDiff) -> None:
        try:
            self._send.send((block, receipts, raws, diff))
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
        self._send.close()
        self._recv.close()


def _serve_writes(path: Path, requests: Connection, replies: Connection) -> None:
    store = Store(path)
    while True:
        try:
            item = requests.recv()
        except (EOFError, OSError):
            return  # the node is gone; whatever was committed stays committed
        if item is None:
            store.close()
            return
        try:
            store.append(*item)
        except Exception as exc:  # report, keep serving: the node decides to stop
            replies.send(f"{type(exc).__name__}: {exc}")
        else:
            replies.send(None)


if __name__ == "__main__":
    _serve_writes(
        Path(sys.argv[1]), Connection(int(sys.argv[2]), writable=False), Connection(int(sys.argv[3]), readable=False)
    )
