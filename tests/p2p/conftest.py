"""Transports under test: one suite runs on every backend in ``BACKENDS``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from coincurve import PrivateKey

from node.hashing import address_of_public
from node.p2p._delivery import DELIVERY_QUEUE
from node.p2p.libp2p import Libp2pTransport, PeerConfig, multiaddr_for
from node.p2p.memory import MAX_FRAME_BYTES, MemoryNetwork
from node.p2p.transport import Transport

BACKENDS = ["memory", "libp2p"]
WAIT_S = 30.0  # generous: loaded CI machines


def key_of(i: int) -> bytes:
    return PrivateKey.from_int(1000 + i).secret


def address_of_key(key: bytes) -> str:
    return address_of_public(PrivateKey(key).public_key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Inbox:
    """Collects what a transport delivers; answers requests with ``b"re:" + data``."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.gate = threading.Event()  # the frame handler waits on it: a handler as slow as we like
        self.gate.set()

    def on_frame(self, sender: str, frame: bytes) -> None:
        with self.lock:
            self.frames.append((sender, frame))
            self.threads.add(threading.current_thread().name)
        self.gate.wait(WAIT_S)

    def on_request(self, sender: str, data: bytes) -> bytes:
        self.threads.add(threading.current_thread().name)
        if data == b"raise":
            raise RuntimeError("handler fails on purpose")
        return b"re:" + sender.encode() + b":" + data

    def got(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.frames)

    def payloads(self) -> list[bytes]:
        return [f for _s, f in self.got()]


@dataclass
class Cluster:
    """``n`` started transports that all know each other, plus ways to add and restart members."""

    backend: str
    keys: list[bytes]
    max_frame: dict[int, int] = field(default_factory=dict)
    delivery_queue: dict[int, int] = field(default_factory=dict)
    transports: dict[int, Transport] = field(default_factory=dict)
    inboxes: dict[int, Inbox] = field(default_factory=dict)
    wire: MemoryNetwork = field(default_factory=lambda: MemoryNetwork(seed=7))
    ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = [free_port() for _ in self.keys]

    @property
    def addresses(self) -> list[str]:
        return [address_of_key(k) for k in self.keys]

    def peer_configs(self, members: list[int]) -> list[PeerConfig]:
        return [
            PeerConfig.parse(
                {"address": self.addresses[i], "multiaddr": multiaddr_for(self.keys[i], "127.0.0.1", self.ports[i])}
            )
            for i in members
        ]

    def start(self, i: int, members: list[int]) -> Transport:
        """Start member ``i`` knowing (and allowing) ``members``."""
        limit = self.max_frame.get(i, MAX_FRAME_BYTES)
        queued = self.delivery_queue.get(i, DELIVERY_QUEUE)
        transport: Transport
        if self.backend == "memory":
            allowed = set(self.addresses[j] for j in members)
            transport = self.wire.transport(
                self.addresses[i], allowed.__contains__, max_frame_bytes=limit, delivery_queue=queued
            )
        else:
            transport = Libp2pTransport(
                self.keys[i],
                "127.0.0.1",
                self.ports[i],
                self.peer_configs(members),
                max_frame_bytes=limit,
                delivery_queue=queued,
            )
        inbox = Inbox()
        transport.start(inbox.on_frame, inbox.on_request)
        self.transports[i], self.inboxes[i] = transport, inbox
        return transport

    def stop(self, i: int) -> None:
        self.transports.pop(i).close()

    def wait_mesh(self, members: list[int]) -> None:
        for i in members:
            want = {self.addresses[j] for j in members if j != i}
            until(lambda i=i, want=want: want <= set(self.transports[i].connected()), f"member {i} connected")

    def close(self) -> None:
        for i in list(self.transports):
            self.stop(i)


def p2p_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("p2p-")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_cluster(backend: str) -> Iterator[Callable[[int], Cluster]]:
    made: list[Cluster] = []

    def make(n: int) -> Cluster:
        cluster = Cluster(backend, [key_of(i) for i in range(n)])
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
    until(lambda: not p2p_threads(), "transport threads to end", 20.0)
