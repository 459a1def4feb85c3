"""The long run: a million transactions through the node in process, steady or not.

The workload is the throughput benchmark's (pre-signed ``commitKey`` from many vehicles,
each a fresh session, so the registry's state grows with every transaction). The
transactions are signed first, on all cores, into a temporary file, and streamed from
it in segments, so the benchmark's own memory stays flat and the node's RSS is what is
measured. They are offered at ``offered_tps`` (above the node's capacity, back-pressure
paces the client: refused transactions are offered again after the wait the node asks
for). Every ``window_s`` the run records what was included, the latency percentiles of
the window's transactions, the refusals and the RSS.

Reported: CPU time per transaction of each of the node's processes (its own, which also
runs this client; the store writer; the recovery workers), TPS per window and its spread
(steady means the last windows run as fast as the first ones), and the RSS slope in MB
per 100,000 transactions, fitted over the second half of the run (after warm-up), beside
the state the registry itself gained (storage slots in the store), which any EVM node
must hold.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from node.benchmark import InProcessNode, Offer, Workload, rss_of
from node.metrics import Percentiles

SEGMENT = 20_000  # transactions read from the file and offered at a time
Progress = Callable[[str], None]


def _signed(path: Path, workload: Workload, transactions: int, say: Progress) -> None:
    with path.open("wb") as out:
        done = 0
        while done < transactions:
            count = min(SEGMENT, transactions - done)
            for raw in workload.commits(count):
                out.write(struct.pack(">I", len(raw)) + raw)
            done += count
            say(f"signed {done:,} of {transactions:,}")


def _segments(path: Path) -> Iterator[list[bytes]]:
    with path.open("rb") as source:
        segment: list[bytes] = []
        while header := source.read(4):
            segment.append(source.read(struct.unpack(">I", header)[0]))
            if len(segment) == SEGMENT:
                yield segment
                segment = []
        if segment:
            yield segment


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now living (Linux ``/proc/PID/task/TID/children``)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(child) for child in task.read_text().split()]
    return tree


def _cpu_by_role(roles: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of RSS (MB) over included transactions, per 100,000."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx * 100_000


class _Windows:
    """Per-window accounting, fed by the node's durable-block callback."""

    def __init__(self, window_s: float, say: Progress) -> None:
        self.window_s, self.say = window_s, say
        self.lock = threading.Lock()
        self.submitted: dict[bytes, float] = {}
        self.rows: list[dict[str, Any]] = []
        self.included = 0
        self.refusals = 0
        self.start = self.opened = time.perf_counter()
        self._latencies: list[float] = []
        self._early: dict[bytes, float] = {}
        self._at_open = 0

    def on_block(self, _block: object, receipts: list[Any]) -> None:
        now = time.perf_counter()
        with self.lock:
            for r in receipts:
                at = self.submitted.pop(r.tx_hash, None)
                if at is None:  # durable before the client registered it
                    self._early[r.tx_hash] = now
                else:
                    self._included(now - at)
            if now - self.opened >= self.window_s:
                self.close_window(now)

    def accepted(self, tx_hash: bytes, at: float) -> None:
        """The node took ``tx_hash``, handed over at ``at`` (lock held)."""
        done = self._early.pop(tx_hash, None)
        if done is None:
            self.submitted[tx_hash] = at
        else:
            self._included(done - at)

    def _included(self, latency: float) -> None:
        self._latencies.append(latency)
        self.included += 1

    def close_window(self, now: float) -> None:
        """Record the window ending ``now`` (lock held)."""
        lat = Percentiles.of([x * 1000 for x in self._latencies])
        count = self.included - self._at_open
        self.rows.append({
            "t_s": round(now - self.start, 2),
            "included": self.included,
            "tps": round(count / (now - self.opened), 1),
            "p50_ms": round(lat.p50, 2),
            "p99_ms": round(lat.p99, 2),
            "refusals": self.refusals,
            "rss_mb": round(rss_of(), 1),
        })  # fmt: skip
        row = self.rows[-1]
        self.say(f"{row['included']:,} included: {row['tps']:,} tx/s, p99 {row['p99_ms']} ms, RSS {row['rss_mb']} MB")
        self.opened, self._at_open, self._latencies = now, self.included, []


def run_long(
    transactions: int = 1_000_000,
    offered_tps: float = 20_000,
    window_s: float = 10.0,
    vehicles: int = 64,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``transactions`` through the node in process; returns the JSON report."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qkdchain-long-") as tmp, ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        system = InProcessNode(1337)
        try:
            workload = Workload(system.chain_id, vehicles, pool)
            system.prepare(workload.accounts)
            node = system.node
            assert node is not None
            last = node.submit_many(workload.setup())[-1]
            if not isinstance(last, bytes):
                raise RuntimeError(f"setup refused: {last}")
            node.wait(last)
            signing = time.perf_counter()
            stream = Path(tmp) / "signed.bin"
            _signed(stream, workload, transactions, say)
            signing_s = time.perf_counter() - signing
            windows = _Windows(window_s, say)
            rss_start = rss_of()
            roles = node.processes()
            cpu_start = _cpu_by_role(roles)
            node.subscribe(windows.on_block)
            refused_before = 0  # refusals of the segments already offered
            for segment in _segments(stream):
                offer = Offer(segment, offered_tps)
                for chunk, at in offer:
                    results = node.submit_many(chunk)  # no lock held: the writer's callback is not kept waiting
                    with windows.lock:
                        for tx_hash in offer.answered(chunk, results):
                            windows.accepted(tx_hash, at)
                        windows.refusals = refused_before + offer.refusals
                refused_before += offer.refusals
            deadline = time.monotonic() + 300
            while windows.included < transactions and time.monotonic() < deadline:
                time.sleep(0.05)
            with windows.lock:
                windows.close_window(time.perf_counter())
            node.unsubscribe(windows.on_block)
            cpu = {role: t - cpu_start[role] for role, t in _cpu_by_role(roles).items()}
            elapsed = windows.rows[-1]["t_s"]
            slots = _storage_slots(system)
        finally:
            system.close()
    rows = windows.rows
    steady = [r["tps"] for r in rows[1:-1]] or [r["tps"] for r in rows]
    half = [(r["included"], r["rss_mb"]) for r in rows if r["included"] >= windows.included / 2]
    return {
        "benchmark": "node-long",
        "config": {
            "transactions": transactions,
            "offered_tps": offered_tps,
            "window_s": window_s,
            "vehicles": vehicles,
        },
        "machine": {"cpus": os.cpu_count()},
        "signing_s": round(signing_s, 1),
        "included": windows.included,
        "refusals": windows.refusals,
        "elapsed_s": elapsed,
        "tps": round(windows.included / elapsed, 1) if elapsed else 0.0,
        "window_tps": {"min": min(steady), "max": max(steady), "mean": round(sum(steady) / len(steady), 1)},
        "rss_mb": {"start": round(rss_start, 1), "end": rows[-1]["rss_mb"]},
        "rss_slope_mb_per_100k": _round(_slope(half)),
        "cpu_us_per_tx": {role: round(t / max(1, windows.included) * 1e6, 1) for role, t in cpu.items()},
        "storage_slots": slots,
        "storage_slots_per_tx": round(slots / max(1, windows.included), 2),
        "windows": rows,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _storage_slots(system: InProcessNode) -> int:
    """Storage slots the chain holds (the registry's own state), read from the store file."""
    with sqlite3.connect(f"file:{system.data_dir / 'chain.sqlite'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM storage").fetchone()[0])


def plot_long(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["windows"]
    x = [r["included"] / 1000 for r in rows]
    fig, (ax_tps, ax_rss) = plt.subplots(1, 2, figsize=(11, 4))
    ax_tps.plot(x, [r["tps"] for r in rows], marker="o")
    ax_tps.set_xlabel("transactions included (thousands)")
    ax_tps.set_ylabel(f"tx/s per {report['config']['window_s']:g} s window")
    ax_tps.set_ylim(bottom=0)
    ax_tps.set_title(f"node in process, offered {report['config']['offered_tps']:,.0f} tx/s")
    ax_rss.plot(x, [r["rss_mb"] for r in rows], marker="o", color="tab:red")
    ax_rss.set_xlabel("transactions included (thousands)")
    ax_rss.set_ylabel("RSS (MB)")
    ax_rss.set_title(f"RSS slope {report['rss_slope_mb_per_100k']} MB / 100k tx (second half)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
