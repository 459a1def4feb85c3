"""Key-rate demand derived from a devnet run (``qkdchain devnet --json``), scaled to a fleet.

What the devnet report gives: ``key_bits.consumed`` (pad and MAC bits the vehicles used),
``config.vehicles`` and ``config.rsus``; it does not report consumption per RSU pair, nor a
duration in scenario time. So, as stated assumptions:

- the run stands for ``window_s`` seconds of traffic (default 3,600 s: the devnet's key TTL),
  so one vehicle consumes ``consumed / (vehicles · window_s)`` bit/s;
- every pad bit a vehicle uses at its RSU is also needed once on the backbone between that
  RSU's site and another site (RSUs forward what they receive), and since the report has no
  per-pair figures the total is spread evenly over all pairs of ``sites`` backbone nodes
  (the first ``sites`` nodes of the topology);
- demand is uncertain by ``± spread`` around that mean (uniform, like the seed's demand).

Requests are dealt to the providers round-robin.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from qkd.planning.errors import InvalidModel, MalformedFile
from qkd.planning.model import Provider, Request
from qkd.planning.topology import Topology


def per_vehicle_rate_bps(report: Any, window_s: float, path: str = "<data>") -> float:
    """Key bits per second one devnet vehicle consumed. Raises :class:`MalformedFile` when the
    report lacks ``key_bits.consumed`` or ``config.vehicles``, :class:`InvalidModel` for ``window_s <= 0``."""
    if window_s <= 0:
        raise InvalidModel("the window must be positive")
    try:
        consumed = int(report["key_bits"]["consumed"])
        vehicles = int(report["config"]["vehicles"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedFile(
            path, f"not a devnet JSON report (needs key_bits.consumed, config.vehicles): {exc!r}"
        ) from exc
    if vehicles < 1 or consumed < 0:
        raise MalformedFile(path, "a devnet report needs vehicles >= 1 and consumed >= 0")
    return consumed / (vehicles * window_s)


def devnet_requests(
    report: Any,
    topology: Topology,
    providers: tuple[Provider, ...],
    fleet: int,
    sites: int = 4,
    window_s: float = 3600.0,
    spread: float = 0.5,
    path: str = "<data>",
) -> tuple[tuple[Provider, ...], dict[str, Any]]:
    """``providers`` with their requests replaced by the devnet-derived demand for ``fleet``
    vehicles, and a summary of the derivation (per-vehicle rate, total, per pair).

    Raises :class:`MalformedFile` for a bad report, :class:`InvalidModel` for ``fleet < 1``,
    ``sites`` outside ``[2, nodes]`` or ``spread`` outside ``[0, 1]``.
    """
    if fleet < 1 or not 2 <= sites <= len(topology.nodes) or not 0 <= spread <= 1 or not providers:
        raise InvalidModel(f"need fleet >= 1, 2 <= sites <= {len(topology.nodes)}, 0 <= spread <= 1, providers")
    per_vehicle = per_vehicle_rate_bps(report, window_s, path)
    nodes = topology.nodes[:sites]
    pairs = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]
    mean = fleet * per_vehicle / len(pairs)
    dealt: dict[str, list[Request]] = {p.name: [] for p in providers}
    for i, (a, b) in enumerate(pairs):
        owner = providers[i % len(providers)].name
        dealt[owner].append(Request(f"{owner}/{a}-{b}", owner, a, b, mean * (1 - spread), mean * (1 + spread)))
    summary = {
        "per_vehicle_bps": per_vehicle,
        "fleet": fleet,
        "total_bps": fleet * per_vehicle,
        "sites": list(nodes),
        "pairs": len(pairs),
        "per_pair_mean_bps": mean,
        "spread": spread,
        "window_s": window_s,
    }
    return tuple(replace(p, requests=tuple(dealt[p.name])) for p in providers if dealt[p.name]), summary


def load_devnet_report(path: str | Path) -> Any:
    """The JSON document ``qkdchain devnet --json`` printed. Raises :class:`MalformedFile`."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MalformedFile(str(path), f"not a readable devnet JSON report ({exc})") from exc
