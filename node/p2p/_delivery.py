"""The delivery thread shared by every transport, and the drop counters."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from node.p2p.errors import TransportClosed
from node.p2p.transport import DropReason, FrameHandler, RequestHandler

log = logging.getLogger("qkdchain.p2p")

DELIVERY_QUEUE = 10_000
"""Frames and requests waiting for the handlers before new ones are dropped."""
JOIN_S = 10.0

Reply = Callable[[bytes | None], None]
"""Takes the response, or ``None`` when the handler raised or the request was not served."""


class Drops:
    """Thread-safe counters of dropped frames; logs the first drop of each reason, then every 1,000th."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, reason: DropReason, peer: str = "") -> None:
        with self._lock:
            self._counts[reason.value] += 1
            n = self._counts[reason.value]
        if n == 1 or n % 1000 == 0:
            log.warning("%s dropped a frame (%s, peer %s); %d so far", self._owner, reason.value, peer or "-", n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class _Frame:
    sender: str
    frame: bytes


@dataclass(frozen=True)
class _Request:
    sender: str
    data: bytes
    reply: Reply


_STOP = object()


class Delivery:
    """One thread that calls the handlers, fed through a bounded queue.

    ``frame`` and ``request`` never block: when the queue is full the item is dropped
    (a frame is counted under ``delivery_queue_full``; a request is answered ``None``).
    A handler that raises is logged with its traceback and counted; delivery goes on,
    because one bad frame must not silence a validator.
    """

    def __init__(self, owner: str, drops: Drops, capacity: int = DELIVERY_QUEUE) -> None:
        self._owner = owner
        self._drops = drops
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._on_frame: FrameHandler | None = None
        self._on_request: RequestHandler | None = None
        self._closed = False

    def start(self, on_frame: FrameHandler, on_request: RequestHandler) -> None:
        """Start the thread. Raises ``TransportClosed`` if started before or closed."""
        if self._thread is not None or self._closed:
            raise TransportClosed(f"{self._owner}: delivery already started or closed")
        self._on_frame, self._on_request = on_frame, on_request
        self._thread = threading.Thread(target=self._run, name=f"p2p-delivery-{self._owner[:10]}", daemon=True)
        self._thread.start()

    def frame(self, sender: str, frame: bytes) -> None:
        """Queue a frame for ``on_frame`` (dropped and counted when the queue is full)."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(_Frame(sender, frame))
        except queue.Full:
            self._drops.add(DropReason.DELIVERY_QUEUE_FULL, sender)

    def request(self, sender: str, data: bytes, reply: Reply) -> None:
        """Queue a request for ``on_request``; ``reply(None)`` at once when the queue is full or closed."""
        if self._closed:
            reply(None)
            return
        try:
            self._queue.put_nowait(_Request(sender, data, reply))
        except queue.Full:
            log.warning("%s: delivery queue full, refusing a request from %s", self._owner, sender)
            reply(None)

    def close(self) -> None:
        """Stop the thread after the item in hand; queued items are discarded (requests answered ``None``)."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + JOIN_S
        while True:  # make room for the sentinel: whatever is queued is discarded anyway
            try:
                self._queue.put_nowait(_STOP)
                break
            except queue.Full:
                self._discard_one()
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("%s: a handler did not return within %.0f s of close()", self._owner, JOIN_S)

    def _discard_one(self) -> None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, _Request):
            item.reply(None)

    def _run(self) -> None:
        assert self._on_frame is not None and self._on_request is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self._closed:
                if isinstance(item, _Request):
                    item.reply(None)
                continue
            if isinstance(item, _Frame):
                try:
                    self._on_frame(item.sender, item.frame)
                except Exception:
                    log.exception("%s: frame handler raised on a frame from %s", self._owner, item.sender)
                    self._drops.add(DropReason.HANDLER_ERROR, item.sender)
            elif isinstance(item, _Request):
                try:
                    response: bytes | None = self._on_request(item.sender, item.data)
                except Exception:
                    log.exception("%s: request handler raised on a request from %s", self._owner, item.sender)
                    response = None
                item.reply(response)
        while True:  # answer requests left behind so no requester waits for its timeout
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(left, _Request):
                left.reply(None)
