"""Benchmark of the QKD engine, behind ``qkdchain bench qkd`` and ``scripts/bench_qkd.py``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qkd.bb84 import SourceConfig
from qkd.cascade import LocalParities, cascade
from qkd.channel import fibre
from qkd.estimation import binary_entropy
from qkd.keyrate import decoy_rate, single_photon_bound
from qkd.session import SessionConfig, run_session

DISTANCES_KM = tuple(range(0, 151, 10))


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def run_qkd_benchmark(
    sessions: int = 8,
    session_pulses: int = 1_500_000,
    cascade_bits: int = 100_000,
    simulated_km: Sequence[int] = (0, 10, 20, 30, 40, 50),
    skr_pulses: int = 4_000_000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure session latency, Cascade throughput and the key rate against distance."""
    say = progress or (lambda _m: None)
    decoy = SourceConfig(decoy=True)

    latencies: list[float] = []
    finals: list[int] = []
    aborted = 0
    start = time.perf_counter()
    for i in range(sessions):
        say(f"session {i + 1}/{sessions} over 10 km of fibre")
        t0 = time.perf_counter()
        out = run_session(
            SessionConfig(pulses=session_pulses, channel=fibre(10), source=decoy, seed=i), i.to_bytes(32, "big")
        )
        latencies.append((time.perf_counter() - t0) * 1e3)
        if out.record.aborted or out.record.final_bits < 256:
            aborted += 1
        else:
            finals.append(out.record.final_bits)
    wall = time.perf_counter() - start

    cascade_results: dict[str, dict[str, float]] = {}
    for q in (0.02, 0.05):
        say(f"Cascade at QBER {q:.0%}")
        rng = np.random.default_rng(7)
        a = rng.integers(0, 2, cascade_bits, dtype=np.uint8)
        b = a ^ (rng.random(cascade_bits) < q).astype(np.uint8)
        t0 = time.perf_counter()
        result = cascade(b, LocalParities(a), q)
        elapsed = time.perf_counter() - t0
        cascade_results[f"{q:.2f}"] = {
            "bits": cascade_bits,
            "seconds": round(elapsed, 4),
            "bits_per_s": round(cascade_bits / elapsed),
            "efficiency": round(result.leaked_bits / (cascade_bits * binary_entropy(float(np.mean(a != b)))), 4),
            "corrected": bool(np.array_equal(result.corrected, a)),
        }

    skr: list[dict[str, Any]] = []
    for km in DISTANCES_KM:
        channel = fibre(float(km))
        point: dict[str, Any] = {
            "distance_km": km,
            "asymptotic_decoy_bits_per_pulse": decoy_rate(channel, decoy.mu_signal),
            "single_photon_bound_bits_per_pulse": single_photon_bound(channel),
        }
        if km in simulated_km:
            say(f"finite-key session at {km} km ({skr_pulses:,} pulses)")
            out = run_session(
                SessionConfig(pulses=skr_pulses, channel=channel, source=decoy, seed=1000 + km), b"skr" + bytes(29)
            )
            point["simulated_bits_per_pulse"] = out.record.final_bits / skr_pulses
            point["simulated_final_bits"] = out.record.final_bits
            point["simulated_abort_reason"] = out.record.abort_reason
        skr.append(point)

    return {
        "session": {
            "channel": "fibre 10 km, decoy BB84",
            "pulses": session_pulses,
            "sessions": sessions,
            "with_256_final_bits": sessions - aborted,
            "sessions_per_s": round(sessions / wall, 3),
            "latency_ms": _percentiles(latencies),
            "mean_final_bits": round(float(np.mean(finals)), 1) if finals else 0.0,
        },
        "cascade": cascade_results,
        "skr_vs_distance": skr,
        "claimed_qkd_delay_ms": 2.0,
    }


def plot_qkd_benchmark(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = report["skr_vs_distance"]
    km = [p["distance_km"] for p in pts]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogy(
        km, [max(p["single_photon_bound_bits_per_pulse"], 1e-12) for p in pts], "--", label="ideal single-photon bound"
    )
    ax.semilogy(
        km,
        [max(p["asymptotic_decoy_bits_per_pulse"], 1e-12) for p in pts],
        "-",
        label="asymptotic decoy BB84 (f = 1.1)",
    )
    sim = [(p["distance_km"], p["simulated_bits_per_pulse"]) for p in pts if p.get("simulated_bits_per_pulse")]
    if sim:
        ax.semilogy(*zip(*sim, strict=True), "o", label="simulated finite-key session (this engine)")
    ax.set_xlabel("fibre length (km)")
    ax.set_ylabel("secret key bits per pulse")
    ax.set_ylim(1e-8, 1)
    ax.set_title("Secret key rate vs distance")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
