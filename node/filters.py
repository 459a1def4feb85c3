"""Filters and subscriptions: the node's new blocks, logs and pending transactions, fanned out.

:class:`Events` listens to the node (a block is announced once durable, a transaction
once admitted) and hands each event to every registered :class:`Sink`. Two kinds of
sink exist: HTTP filters (``eth_newFilter`` and friends), which queue what they match
until polled with ``eth_getFilterChanges``, and WebSocket subscriptions
(``eth_subscribe``), which the server pushes at once.

Everything is bounded: a filter holds at most :data:`FILTER_BACKLOG` unpolled items
(beyond it the filter is marked overflowed and its next poll is a named error, never a
silent gap), at most :data:`MAX_FILTERS` filters exist, and a filter not polled for
:data:`FILTER_TTL_S` seconds is removed, as geth does.
"""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from node.block import Block, SealedReceipt
from node.engine.base import LogEntry
from node.hashing import keccak
from node.store import StoredLog

MAX_FILTERS = 1_000
FILTER_BACKLOG = 10_000
FILTER_TTL_S = 300.0
NEW_HEADS, LOGS, PENDING = "newHeads", "logs", "newPendingTransactions"


class FilterError(Exception):
    """A filter that does not exist (any more), overflowed, or one too many."""


@dataclass(frozen=True)
class LogQuery:
    """Which logs match: any of ``addresses`` (``None``: any), and topics by position
    (``None`` at a position: any; a set: any of those)."""

    addresses: frozenset[str] | None = None
    topics: tuple[frozenset[bytes] | None, ...] = ()

    def matches(self, entry: LogEntry) -> bool:
        if self.addresses is not None and entry.address not in self.addresses:
            return False
        if len(self.topics) > len(entry.topics):
            return all(w is None for w in self.topics[len(entry.topics) :]) and all(
                w is None or entry.topics[i] in w for i, w in enumerate(self.topics[: len(entry.topics)])
            )
        return all(w is None or entry.topics[i] in w for i, w in enumerate(self.topics))


def block_logs(block: Block, receipts: list[SealedReceipt]) -> list[StoredLog]:
    found: list[StoredLog] = []
    for r in receipts:
        for entry in r.execution.logs:
            found.append(
                StoredLog(block.number, block.hash, len(found), r.tx_hash, r.index, entry, block.header.timestamp)
            )
    return found


class Sink(ABC):
    """Receives events; subclasses keep or push them."""

    kind: str = NEW_HEADS
    query: LogQuery | None = None

    @abstractmethod
    def block(self, block: Block, logs: list[StoredLog]) -> None: ...

    @abstractmethod
    def pending(self, tx_hash: bytes) -> None: ...


@dataclass
class Filter(Sink):
    """An HTTP filter: what matched since the last poll."""

    kind: str = NEW_HEADS
    query: LogQuery | None = None
    first_block: int | None = None  # where eth_getFilterLogs starts (None: the head when asked, as geth)
    last_block: int | None = None  # where it ends (None: the head)
    items: list[Any] = field(default_factory=list)
    overflowed: bool = False
    polled: float = field(default_factory=time.monotonic)

    def _add(self, item: Any) -> None:
        if len(self.items) >= FILTER_BACKLOG:
            self.overflowed = True
        else:
            self.items.append(item)

    def block(self, block: Block, logs: list[StoredLog]) -> None:
        if self.kind == NEW_HEADS:
            self._add(block.hash)
        elif self.kind == LOGS and self.query is not None:
            if self.last_block is not None and block.number > self.last_block:
                return
            for found in logs:
                if self.query.matches(found.log):
                    self._add(found)

    def pending(self, tx_hash: bytes) -> None:
        if self.kind == PENDING:
            self._add(tx_hash)


class Events:
    """The fan-out point: the node tells it of blocks and transactions, it tells the sinks.

    Args:
        ttl_s: idle time after which an unpolled HTTP filter is removed.
    """

    def __init__(self, ttl_s: float = FILTER_TTL_S) -> None:
        self._lock = threading.Lock()
        self._filters: dict[str, Filter] = {}
        self._sinks: dict[str, Sink] = {}
        self._ttl_s = ttl_s

    # -- fed by the node (its writer thread and admitting threads) --

    def on_block(self, block: Block, receipts: list[SealedReceipt]) -> None:
        with self._lock:
            sinks = [*self._filters.values(), *self._sinks.values()]
        if not sinks:
            return
        logs = block_logs(block, receipts)
        for sink in sinks:
            sink.block(block, logs)

    def on_admitted(self, raw: bytes) -> None:
        with self._lock:
            sinks = [s for s in (*self._filters.values(), *self._sinks.values()) if s.kind == PENDING]
        if sinks:
            tx_hash = keccak(raw)
            for sink in sinks:
                sink.pending(tx_hash)

    # -- HTTP filters --

    def install(self, made: Filter) -> str:
        """Add a filter and return its id.

        Raises:
            FilterError: :data:`MAX_FILTERS` filters exist already (after expiring idle ones).
        """
        with self._lock:
            self._expire()
            if len(self._filters) >= MAX_FILTERS:
                raise FilterError(f"too many filters ({MAX_FILTERS}); uninstall some or poll the ones you have")
            filter_id = _new_id()
            self._filters[filter_id] = made
            return filter_id

    def take(self, filter_id: str) -> tuple[Filter, list[Any]]:
        """The filter and what it matched since the last poll (emptied).

        Raises:
            FilterError: no such filter, or it overflowed (it is removed then).
        """
        with self._lock:
            self._expire()
            found = self._filters.get(filter_id)
            if found is None:
                raise FilterError("filter not found")
            if found.overflowed:
                del self._filters[filter_id]
                raise FilterError(f"filter overflowed ({FILTER_BACKLOG} unpolled items) and was removed; poll sooner")
            items, found.items = found.items, []
            found.polled = time.monotonic()
            return found, items

    def get(self, filter_id: str) -> Filter:
        with self._lock:
            self._expire()
            found = self._filters.get(filter_id)
            if found is None:
                raise FilterError("filter not found")
            found.polled = time.monotonic()
            return found

    def uninstall(self, filter_id: str) -> bool:
        with self._lock:
            return self._filters.pop(filter_id, None) is not None

    def _expire(self) -> None:
        cutoff = time.monotonic() - self._ttl_s
        for filter_id in [k for k, f in self._filters.items() if f.polled < cutoff]:
            del self._filters[filter_id]

    # -- subscriptions (the server owns their sinks) --

    def attach(self, sink: Sink) -> str:
        with self._lock:
            sink_id = _new_id()
            self._sinks[sink_id] = sink
            return sink_id

    def detach(self, sink_id: str) -> bool:
        with self._lock:
            return self._sinks.pop(sink_id, None) is not None

    @property
    def sizes(self) -> tuple[int, int]:
        """Installed filters and attached subscriptions."""
        with self._lock:
            return len(self._filters), len(self._sinks)


def _new_id() -> str:
    """128 random bits as a spec quantity (no leading zero digit)."""
    return hex(secrets.randbits(127) | 1 << 127)
