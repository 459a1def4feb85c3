"""An in-process network of transports with fault injection, for node-level tests.

:class:`MemoryNetwork` is the wire: one thread that delivers frames when they fall due,
after the per-link delay, drop and duplication faults are applied with a seeded RNG.
Links stay FIFO under delay (a frame never overtakes an earlier one on the same
directed link), as a TCP stream would. Partitions can be changed at run time; a frame
in flight across a new partition is dropped when it falls due.

Requests get the link's delay but neither drop nor duplication: over a real transport a
request rides a reliable stream, and loses only to a broken connection (modelled here
by partitions, which fail a request with ``PeerUnreachable``).

:class:`MemoryTransport` keeps the threading contract of :mod:`node.p2p.transport`:
handlers run on its own delivery thread, never on the caller's or the wire's.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from node.p2p._delivery import DELIVERY_QUEUE, Delivery, Drops
from node.p2p.errors import (
    BadPeerConfig,
    FrameTooLarge,
    PeerUnreachable,
    RequestRefused,
    RequestTimeout,
    TransportClosed,
    UnknownPeer,
)
from node.p2p.transport import DropReason, FrameHandler, RequestHandler, Transport

log = logging.getLogger("qkdchain.p2p.memory")

MAX_FRAME_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Faults:
    """What happens to a frame on a link.

    Attributes:
        drop: probability that a frame is lost.
        duplicate: probability that a delivered frame arrives twice.
        delay_s: ``(low, high)``; each frame's delay is uniform in it.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay_s: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        low, high = self.delay_s
        if not (0.0 <= self.drop <= 1.0 and 0.0 <= self.duplicate <= 1.0 and 0.0 <= low <= high):
            raise ValueError(f"faults out of range: {self}")


class MemoryNetwork:
    """The wire between :class:`MemoryTransport` objects made by :meth:`transport`.

    Args:
        seed: seeds the RNG that draws drops, duplicates and delays.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Condition()
        self._members: dict[str, MemoryTransport] = {}
        self._default = Faults()
        self._links: dict[tuple[str, str], Faults] = {}
        self._groups: list[frozenset[str]] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._last_due: dict[tuple[str, str], float] = {}
        self._thread: threading.Thread | None = None

    # -- building and faults --

    def transport(
        self,
        address: str,
        allowed: Callable[[str], bool] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        delivery_queue: int = DELIVERY_QUEUE,
    ) -> MemoryTransport:
        """A new transport for ``address`` on this network (joins when started).

        Args:
            allowed: senders whose frames and requests are served; default everyone.
            max_frame_bytes: larger frames are refused when sent and when received.
            delivery_queue: frames waiting for the handlers before new ones are dropped.

        Raises:
            BadPeerConfig: an open transport already has this address.
        """
        with self._lock:
            if address in self._members:
                raise BadPeerConfig(address, "an open transport on this network already has this address")
        return MemoryTransport(self, address, allowed, max_frame_bytes, delivery_queue)

    def faults(self, drop: float = 0.0, duplicate: float = 0.0, delay_s: tuple[float, float] = (0.0, 0.0)) -> None:
        """Set the faults of every link that has no faults of its own (:meth:`link`)."""
        faults = Faults(drop, duplicate, delay_s)
        with self._lock:
            self._default = faults

    def link(
        self,
        sender: str,
        receiver: str,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay_s: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """Set the faults of the directed link ``sender -> receiver`` (overrides :meth:`faults`)."""
        faults = Faults(drop, duplicate, delay_s)
        with self._lock:
            self._links[(sender, receiver)] = faults

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut the network into ``groups``: two addresses listed in different groups cannot reach
        each other. An address in no group reaches everyone. Replaces any earlier partition."""
        cut = [frozenset(g) for g in groups]
        with self._lock:
            self._groups = cut

    def heal(self) -> None:
        """Remove the partition and every fault (default and per-link)."""
        with self._lock:
            self._groups = []
            self._links.clear()
            self._default = Faults()

    def close(self) -> None:
        """Close every transport on the network (and so stop the wire thread)."""
        with self._lock:
            members = list(self._members.values())
        for member in members:
            member.close()

    # -- used by MemoryTransport --

    def _cut(self, a: str, b: str) -> bool:
        group_a = next((g for g in self._groups if a in g), None)
        group_b = next((g for g in self._groups if b in g), None)
        return group_a is not None and group_b is not None and group_a is not group_b

    def _join(self, member: MemoryTransport) -> None:
        with self._lock:
            if member.address in self._members:
                raise BadPeerConfig(member.address, "an open transport on this network already has this address")
            self._members[member.address] = member
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="p2p-memory-wire", daemon=True)
                self._thread.start()

    def _leave(self, member: MemoryTransport) -> None:
        with self._lock:
            if self._members.get(member.address) is member:
                del self._members[member.address]
            thread = self._thread if not self._members else None
            if thread is not None:
                self._thread = None
                self._lock.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)

    def _reachable(self, sender: str) -> list[str]:
        with self._lock:
            return sorted(a for a in self._members if a != sender and not self._cut(sender, a))

    def _member(self, address: str) -> MemoryTransport | None:
        with self._lock:
            return self._members.get(address)

    def _post_frame(self, sender: MemoryTransport, receiver: str, frame: bytes) -> None:
        with self._lock:
            faults = self._links.get((sender.address, receiver), self._default)
            if self._rng.random() < faults.drop:
                sender._drops.add(DropReason.INJECTED, receiver)
                return
            copies = 2 if self._rng.random() < faults.duplicate else 1
            due = self._due(sender.address, receiver, faults)
            for _ in range(copies):
                self._push(due, lambda: self._arrive_frame(sender.address, receiver, frame))

    def _post_request(self, sender: str, receiver: str, deliver: Callable[[], None]) -> None:
        with self._lock:
            due = self._due(sender, receiver, self._links.get((sender, receiver), self._default))
            self._push(due, deliver)

    def _due(self, sender: str, receiver: str, faults: Faults) -> float:
        low, high = faults.delay_s
        due = time.monotonic() + (self._rng.uniform(low, high) if high > 0 else 0.0)
        due = max(due, self._last_due.get((sender, receiver), 0.0))  # FIFO per link
        self._last_due[(sender, receiver)] = due
        return due

    def _push(self, due: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), action))
        self._lock.notify_all()

    def _arrive_frame(self, sender: str, receiver: str, frame: bytes) -> None:
        with self._lock:
            target = self._members.get(receiver)
            cut = self._cut(sender, receiver)
        if target is None:
            return
        if cut:
            target._drops.add(DropReason.PARTITIONED, sender)
            return
        target._receive(sender, frame)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                while self._thread is me and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._lock.wait(wait)
                if self._thread is not me:
                    self._heap.clear()
                    return
                _due, _seq, action = heapq.heappop(self._heap)
            action()


class MemoryTransport(Transport):
    """A :class:`~node.p2p.transport.Transport` on a :class:`MemoryNetwork`.

    Every other started member that no partition cuts off counts as connected. The
    sender address a handler sees is the sending transport's ``address``.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        address: str,
        allowed: Callable[[str], bool] | None,
        max_frame_bytes: int,
        delivery_queue: int = DELIVERY_QUEUE,
    ) -> None:
        self.address = address
        self.max_frame_bytes = max_frame_bytes
        self._network = network
        self._allowed = allowed or (lambda _address: True)
        self._drops = Drops(address)
        self._delivery = Delivery(address, self._drops, delivery_queue)
        self._state = "new"  # new -> started -> closed
        self._state_lock = threading.Lock()

    def start(self, on_frame: FrameHandler, on_request: RequestHandler) -> None:
        with self._state_lock:
            if self._state != "new":
                raise TransportClosed(f"{self.address}: start() on a transport that is {self._state}")
            self._delivery.start(on_frame, on_request)
            self._network._join(self)
            self._state = "started"

    def broadcast(self, frame: bytes) -> None:
        self._check(frame)
        for peer in self._network._reachable(self.address):
            self._network._post_frame(self, peer, frame)

    def send(self, peer: str, frame: bytes) -> None:
        self._check(frame)
        self._reach(peer)
        self._network._post_frame(self, peer, frame)

    def request(self, peer: str, data: bytes, timeout: float) -> bytes:
        self._check(data)
        target = self._reach(peer)
        result: Future[bytes] = Future()

        def reply(response: bytes | None) -> None:
            if result.done():
                return
            if response is None:
                result.set_exception(RequestRefused(peer, "not served"))
            else:
                result.set_result(response)

        def deliver() -> None:
            with self._network._lock:
                cut = self._network._cut(self.address, peer)
            if cut or target._state != "started":
                result.set_exception(PeerUnreachable(peer, "link cut while the request was in flight"))
            elif not target._allowed(self.address):
                target._drops.add(DropReason.UNKNOWN_PEER, self.address)
                result.set_exception(RequestRefused(peer, "sender not allowed"))
            elif len(data) > target.max_frame_bytes:
                target._drops.add(DropReason.FRAME_TOO_LARGE, self.address)
                result.set_exception(RequestRefused(peer, "request too large"))
            else:
                target._delivery.request(self.address, data, reply)

        self._network._post_request(self.address, peer, deliver)
        try:
            return result.result(timeout)
        except FutureTimeout:
            raise RequestTimeout(peer, timeout) from None

    def connected(self) -> list[str]:
        if self._state != "started":
            return []
        return self._network._reachable(self.address)

    def drops(self) -> dict[str, int]:
        return self._drops.snapshot()

    def close(self) -> None:
        with self._state_lock:
            if self._state == "closed":
                return
            was_started = self._state == "started"
            self._state = "closed"
        if was_started:
            self._network._leave(self)
        self._delivery.close()

    # -- internals --

    def _check(self, frame: bytes) -> None:
        if self._state != "started":
            raise TransportClosed(f"{self.address}: transport is {self._state}")
        if len(frame) > self.max_frame_bytes:
            raise FrameTooLarge(len(frame), self.max_frame_bytes)

    def _reach(self, peer: str) -> MemoryTransport:
        target = self._network._member(peer)
        if peer == self.address:
            raise UnknownPeer(peer)
        if target is None:
            raise PeerUnreachable(peer, "not on the network")
        if peer not in self._network._reachable(self.address):
            raise PeerUnreachable(peer, "partitioned")
        return target

    def _receive(self, sender: str, frame: bytes) -> None:
        if self._state != "started":
            return
        if not self._allowed(sender):
            self._drops.add(DropReason.UNKNOWN_PEER, sender)
        elif len(frame) > self.max_frame_bytes:
            self._drops.add(DropReason.FRAME_TOO_LARGE, sender)
        else:
            self._delivery.frame(sender, frame)
