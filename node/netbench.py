"""Network benchmark: finalized TPS and submission-to-finality latency for 1, 4 and 7 validators.

The workload is :mod:`node.benchmark`'s (pre-signed ``KeyRegistry.commitKey`` from many
vehicles, sent as JSON-RPC batches). ``validators = 1`` is today's single node (``qkdchain
node`` sealing alone); n > 1 is a :class:`~node.launcher.LocalNetwork` of n node
processes running QBFT over libp2p, all on this machine, sent to validator 0. A block is
stored only once final, so the receipt's first appearance on validator 0 marks finality.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from node.benchmark import NodeRpc, Progress, Workload, _RpcSystem, load_point, plot_load_curves, rss_of
from node.launcher import LocalNetwork, plan_network
from node.longrun import cpu_seconds, process_tree


@dataclass(frozen=True)
class NetworkBenchConfig:
    """What to measure; the defaults finish in about three minutes on two cores."""

    validators: tuple[int, ...] = (1, 4, 7)
    loads: tuple[int, ...] = (100, 500, 2_000)
    seconds: float = 3.0
    vehicles: int = 64
    round_timeout_s: float = 2.0


class NetworkRpc(_RpcSystem):
    """n validator processes on loopback, driven through validator 0."""

    def __init__(self, validators: int, chain_id: int = 1337, round_timeout_s: float = 2.0) -> None:
        self.name = f"qbft-{validators}"
        self.validators = validators
        self.chain_id = chain_id
        self.round_timeout_s = round_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="qkdchain-bench-net-"))
        self.network: LocalNetwork | None = None
        self.url = ""

    def prepare(self, accounts: list[str]) -> None:
        specs = plan_network(
            self._dir, self.validators, chain_id=self.chain_id, admin=accounts[0], permissioned=True,
            alloc={a: 10**24 for a in accounts},
        )  # fmt: skip
        self.network = LocalNetwork(self._dir, specs, self.round_timeout_s).up()
        self.url = specs[0].url

    def rss_mb(self) -> float:
        if self.network is None:
            return 0.0
        return sum(rss_of(p.pid) for p in self.network.processes.values())

    def pids(self) -> list[int]:
        return [] if self.network is None else [p.pid for p in self.network.processes.values()]

    def close(self) -> None:
        if self.network is not None:
            self.network.down()
        shutil.rmtree(self._dir, ignore_errors=True)


def cpu_of(roots: list[int]) -> float:
    """CPU seconds so far of the processes ``roots`` and their children (store, recovery)."""
    return sum(cpu_seconds(pid) for root in roots for pid in process_tree(root))


def spent(cpu_s: float, wall_s: float, blocks: int, transactions: int) -> dict[str, float | None]:
    """Where a load point's CPU went, summed over every node process: cores kept busy, and
    per block finalized and per transaction (a height's fixed cost against the per-transaction
    one: consensus messages, their signatures and the transport are paid per block)."""
    return {
        "cores": round(cpu_s / wall_s, 3) if wall_s > 0 else None,
        "ms_per_block": round(cpu_s * 1000 / blocks, 2) if blocks else None,
        "us_per_tx": round(cpu_s * 1e6 / transactions, 1) if transactions else None,
    }


def run_network_benchmark(config: NetworkBenchConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Measure each network size at each offered load; returns the JSON report."""
    from concurrent.futures import ProcessPoolExecutor

    config = config or NetworkBenchConfig()
    say = progress or (lambda _m: None)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for n in config.validators:
            system: _RpcSystem = NodeRpc(1337) if n == 1 else NetworkRpc(n, 1337, config.round_timeout_s)
            say(f"{n} validators: starting")
            try:
                workload = Workload(system.chain_id, config.vehicles, pool)
                system.prepare(workload.accounts)  # type: ignore[attr-defined]
                system.send_setup(workload.setup())
                for load in config.loads:
                    raws = workload.commits(max(1, int(load * config.seconds)))
                    say(f"{n} validators: offering {load:,} tx/s ({len(raws):,} transactions)")
                    session = requests.Session()
                    roots = system.pids()  # type: ignore[attr-defined]
                    head, cpu, wall = system._block_number(session), cpu_of(roots), time.perf_counter()
                    measured = system.run(raws, load)
                    cpu, wall = cpu_of(roots) - cpu, time.perf_counter() - wall
                    blocks = system._block_number(session) - head
                    rss = system.rss_mb()  # type: ignore[attr-defined]
                    point = load_point(load, measured, rss)
                    cost = spent(cpu, wall, blocks, point["transactions"])
                    results.append({"validators": n, **point, "blocks": blocks, "cpu": cost})
                    say(f"{n} validators at {load:,}: {point['tps']:,} tx/s, p50 {point['latency_ms']['p50']} ms")
            finally:
                system.close()  # type: ignore[attr-defined]
    return {
        "benchmark": "network",
        "workload": "KeyRegistry.commitKey, pre-signed EIP-1559, JSON-RPC batches to validator 0",
        "config": {
            "validators": list(config.validators),
            "loads": list(config.loads),
            "seconds": config.seconds,
            "round_timeout_s": config.round_timeout_s,
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "anchor": {"besu_qbft_4_validators_tps": [750, 1200], "besu_min_block_time_s": 1},
        "results": results,
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


def plot_network_benchmark(report: dict[str, Any], path: Path) -> Path:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        n = r["validators"]
        groups.setdefault("1 validator (solo node)" if n == 1 else f"{n} validators (QBFT)", []).append(r)

    def decorate(ax_tps: Any, _ax_lat: Any) -> None:
        ax_tps.axhspan(750, 1200, color="grey", alpha=0.2, label="Besu QBFT, 4 validators (750-1,200)")

    return plot_load_curves(groups, path, "finalized tx/s", "submission to finality (ms)", decorate)
