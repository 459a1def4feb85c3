"""Throughput and latency of a transport mesh, measured in one process (no printing here).

``measure(n=4, frame_bytes=1024, frames=..., muxer=...)`` starts ``n`` libp2p transports
on loopback, has each broadcast ``frames`` frames carrying their send time, and
reports delivered frames per second and latency percentiles. A benchmark script can
call it and print or save the :class:`Figures`.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Literal

from coincurve import PrivateKey

from node.hashing import address_of_public
from node.p2p.errors import P2PError
from node.p2p.libp2p import Libp2pTransport, PeerConfig, multiaddr_for


@dataclass(frozen=True)
class Figures:
    """Deliveries per second over the whole run, and one-way latency in milliseconds."""

    muxer: str
    hosts: int
    frame_bytes: int
    delivered: int
    expected: int
    frames_per_s: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def measure(
    n: int = 4,
    frame_bytes: int = 1024,
    frames: int = 500,
    rate_per_s: float = 0.0,
    muxer: Literal["MPLEX", "YAMUX"] = "MPLEX",
    timeout_s: float = 60.0,
) -> Figures:
    """Run the mesh and measure it.

    Args:
        frames: broadcasts per host.
        rate_per_s: per-host pacing; 0 sends as fast as the queues take them (frames over
            a full send queue are dropped and show as ``delivered < expected``).

    Raises:
        P2PError: the mesh did not connect within ``timeout_s``.
    """
    keys = [PrivateKey.from_int(7_000 + i).secret for i in range(n)]
    ports = [_free_port() for _ in keys]
    peers = [
        PeerConfig(address_of_public(PrivateKey(k).public_key), multiaddr_for(k, "127.0.0.1", p))
        for k, p in zip(keys, ports, strict=True)
    ]
    latencies: list[float] = []
    lock = threading.Lock()

    def on_frame(_sender: str, frame: bytes) -> None:
        sent = float.fromhex(frame[:32].rstrip(b" ").decode())
        with lock:
            latencies.append(time.perf_counter() - sent)

    transports = [Libp2pTransport(k, "127.0.0.1", p, peers, muxer=muxer) for k, p in zip(keys, ports, strict=True)]
    try:
        for t in transports:
            t.start(on_frame, lambda _s, d: d)
        deadline = time.monotonic() + timeout_s
        while any(len(t.connected()) < n - 1 for t in transports):
            if time.monotonic() > deadline:
                raise P2PError("the mesh did not connect")
            time.sleep(0.02)
        pad = b"\0" * max(0, frame_bytes - 32)
        expected = n * (n - 1) * frames
        start = time.perf_counter()
        for i in range(frames):
            for t in transports:
                t.broadcast(time.perf_counter().hex().encode().ljust(32) + pad)
            if rate_per_s:
                time.sleep(max(0.0, start + (i + 1) / rate_per_s - time.perf_counter()))
        while len(latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
    finally:
        for t in transports:
            t.close()
    with lock:
        got = sorted(latencies)
    return Figures(
        muxer=muxer,
        hosts=n,
        frame_bytes=frame_bytes,
        delivered=len(got),
        expected=expected,
        frames_per_s=len(got) / elapsed,
        p50_ms=1000 * statistics.median(got) if got else float("nan"),
        p99_ms=1000 * got[int(0.99 * (len(got) - 1))] if got else float("nan"),
    )
