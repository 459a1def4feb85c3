"""Benchmark of the QKD engine, behind ``qkdchain bench qkd`` and ``scripts/bench_qkd.py``.

Three parts, all in one run:
- sessions over 10 km sized for 256 final bits, with LDPC and with Cascade: compute
  time, round trips, the time on a link of a given RTT, final bits against Lim's bound;
- reconciliation alone at QBER 1-5 %: efficiency, round trips, frame error rate;
- key rate against distance for 10^6 ... 10^10 pulses: Lim's finite-key bound (protocol
  optimised per point, expected counts), the same bound as N grows without limit, the
  infinite-decoy asymptotic rate, and simulated sessions at a few points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from qkd.channel import fibre
from qkd.classical import Reply, Request, RevealRequest, SiftRequest
from qkd.errors import ReconciliationError
from qkd.estimation import binary_entropy
from qkd.finitekey import asymptotic_rate, expected_key_length, infinite_decoy_rate, optimize_protocol
from qkd.keyrate import decoy_rate
from qkd.reconciliation import RECONCILERS
from qkd.session import AliceEndpoint, SessionConfig, run_session

DISTANCES_KM = tuple(range(0, 151, 10))
BLOCK_PULSES = (10**6, 10**7, 10**8, 10**9, 10**10)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def _sessions(method: str, count: int, rtt_ms: float, say: Callable[[str], None]) -> dict[str, Any]:
    compute, trips, finals, bounds, ratios, effs, eps_cor = [], [], [], [], [], [], []
    aborted: dict[str, int] = {}
    pulses = 0
    # The first session of a process also pays once-per-process costs (scipy.stats is
    # imported on the first hypergeometric tail, about 1.3 s; the phi table, code caches):
    # timed apart, on a seed outside the measured ones, so the percentiles are per session.
    say(f"{method} warm-up session")
    t0 = time.perf_counter()
    run_session(SessionConfig(reconciliation=method, seed=count), count.to_bytes(32, "big"))  # type: ignore[arg-type]
    first_ms = round((time.perf_counter() - t0) * 1e3, 1)
    for i in range(count):
        say(f"{method} session {i + 1}/{count} over 10 km")
        config = SessionConfig(reconciliation=method, seed=i)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        out = run_session(config, i.to_bytes(32, "big"))
        compute.append((time.perf_counter() - t0) * 1e3)
        r = out.record
        pulses = r.pulses
        trips.append(r.round_trips)
        if r.aborted:
            aborted[r.abort_reason or "?"] = aborted.get(r.abort_reason or "?", 0) + 1
            continue
        finals.append(r.final_bits)
        bounds.append(r.lim_bound_bits)
        ratios.append(r.final_bits / r.lim_bound_bits)
        effs.append(r.efficiency)
        eps_cor.append(r.eps_cor)
    on_link = [c + t * rtt_ms for c, t in zip(compute, trips, strict=True)]
    return {
        "reconciliation": method,
        "pulses": pulses,
        "sessions": count,
        "aborted": aborted,
        "with_256_final_bits": sum(f >= 256 for f in finals),
        "final_bits": _percentiles(finals),
        "final_over_lim_bound_min": round(min(ratios), 4) if ratios else 0.0,
        "efficiency_mean": round(float(np.mean(effs)), 4) if effs else 0.0,
        "compute_ms": _percentiles(compute),
        "first_session_in_process_ms": first_ms,
        "round_trips": {"max": max(trips), "mean": round(float(np.mean(trips)), 2)},
        "on_link_ms": _percentiles(on_link),
        "eps_sec": 1e-10,
        "eps_cor_max": max(eps_cor) if eps_cor else 0.0,
    }


class _Counting:
    """An in-memory Alice that counts round trips, for reconciliation alone."""

    def __init__(self, key: np.ndarray) -> None:
        n = key.size
        self.alice = AliceEndpoint(key, np.zeros(n, np.uint8), np.zeros(n, np.uint8), bytes(32))
        self.alice.handle(SiftRequest(np.zeros(n, np.uint8), seq=1))  # every bit in the key basis
        self.alice.handle(RevealRequest("z", np.arange(0), np.zeros(0, np.uint8), seq=2))
        self.seq = 2

    def ask(self, request: Request) -> Reply:
        self.seq += 1
        return self.alice.handle(replace(request, seq=self.seq))


QBERS = (0.01, 0.02, 0.03, 0.05)


def frame_error_upper(failures: int, frames: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a frame error rate seen as
    ``failures`` in ``frames`` (``1 - 0.05^(1/N)``, about ``3/N``, when none failed)."""
    if frames <= 0:
        return 1.0
    if failures >= frames:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, failures + 1, frames - failures))


def pooled_frame_errors(rows: dict[str, Any]) -> dict[str, Any]:
    """Frames and frame errors of ``reconciliation_figures`` rows summed over their
    QBERs, with the pooled one-sided 95 % Clopper-Pearson upper bound."""
    frames = sum(int(r["trials"]) for r in rows.values())
    errors = sum(int(r["frame_errors"]) for r in rows.values())
    return {"frames": frames, "frame_errors": errors, "frame_error_95_upper": frame_error_upper(errors, frames)}


def reconciliation_figures(
    bits: int,
    trials: int,
    say: Callable[[str], None],
    qbers: Sequence[float] = QBERS,
    methods: Sequence[str] = tuple(RECONCILERS),
) -> dict[str, Any]:
    """Each method on ``trials`` random blocks of ``bits`` bits per QBER (one LDPC frame
    each when ``bits`` <= 2^16). A frame error is a block that does not end both
    reconciled and equal to Alice's (a reconciler's failure, or a wrong block it let
    through); f counts every disclosed bit against the block's true error rate (the
    per-frame verification tags apart, reported beside it)."""
    rows: dict[str, Any] = {}
    for q in qbers:
        for method in methods:
            reconciler = RECONCILERS[method]
            say(f"{method} at QBER {q:.0%}")
            rng = np.random.default_rng(int(q * 1000))
            effs, with_tags, trips, secs = [], [], [], []
            failures = wrong_accepted = wrong_caught = tail_frames = 0
            for t in range(trials):
                a = rng.integers(0, 2, bits, dtype=np.uint8)
                b = a ^ (rng.random(bits) < q).astype(np.uint8)
                peer = _Counting(a)
                t0 = time.perf_counter()
                try:
                    res = reconciler.run(b, peer.ask, q, t)
                except ReconciliationError:  # a frame that never decodes is a measured outcome
                    failures += 1
                    continue
                secs.append(time.perf_counter() - t0)
                wrong_caught += int(res.detail.get("wrong_words", 0))
                tail_frames += int(res.detail.get("tail_frames", 0))
                if not np.array_equal(res.corrected, a):
                    failures += 1
                    wrong_accepted += 1
                    continue
                h = bits * binary_entropy(float(np.mean(a != b)))
                effs.append(res.leaked_bits / h)
                with_tags.append((res.leaked_bits + (res.verified.tag_bits if res.verified else 0)) / h)
                trips.append(res.round_trips)
            rows[f"{method}@{q:.2f}"] = {
                "method": method,
                "qber": q,
                "bits": bits,
                "trials": trials,
                "frame_errors": failures,
                "frame_error_rate": round(failures / trials, 6),
                "frame_error_95_upper": frame_error_upper(failures, trials),
                "wrong_words_caught": wrong_caught,
                "decoded_by_the_tail": tail_frames,
                "wrong_blocks_accepted": wrong_accepted,
                "efficiency_mean": round(float(np.mean(effs)), 4) if effs else 0.0,
                "efficiency_max": round(float(np.max(effs)), 4) if effs else 0.0,
                "efficiency_with_frame_tags_mean": round(float(np.mean(with_tags)), 4) if with_tags else 0.0,
                "round_trips_max": max(trips) if trips else 0,
                "round_trips_mean": round(float(np.mean(trips)), 2) if trips else 0.0,
                "bits_per_s": round(bits / float(np.mean(secs))) if secs else 0,
            }
    return rows


def _key_rate(
    distances: Sequence[int], simulated: Sequence[tuple[int, int]], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    for km in sorted(set(distances) | {km for _, km in simulated}):
        channel = fibre(float(km))
        say(f"key rate at {km} km")
        point: dict[str, Any] = {
            "distance_km": km,
            "unbiased_bb84_infinite_decoy_bits_per_pulse": decoy_rate(channel, 0.5, f=1.15),
            "finite_key_bound_bits_per_pulse": {},
        }
        protocol = None
        for n in BLOCK_PULSES:
            protocol, length = optimize_protocol(channel, n)
            point["finite_key_bound_bits_per_pulse"][str(n)] = max(length, 0) / n
        assert protocol is not None
        point["three_intensity_limit_bits_per_pulse"] = asymptotic_rate(channel, protocol)
        point["infinite_decoy_bits_per_pulse"] = infinite_decoy_rate(channel, protocol)
        for n, at_km in simulated:
            if at_km != km:
                continue
            say(f"simulated session: {n:.0e} pulses at {km} km")
            proto, _ = optimize_protocol(channel, n)
            config = SessionConfig(pulses=n, channel=channel, protocol=proto, seed=km)
            t0 = time.perf_counter()
            out = run_session(config, bytes(32))
            r = out.record
            point.setdefault("simulated", []).append(
                {
                    "pulses": n,
                    "final_bits": r.final_bits,
                    "bits_per_pulse": r.final_bits / n,
                    "lim_bound_bits": r.lim_bound_bits,
                    "expected_bound_bits": max(expected_key_length(channel, proto, n, efficiency=1.25), 0),
                    "abort_reason": r.abort_reason,
                    "compute_ms": round((time.perf_counter() - t0) * 1e3, 1),
                    "round_trips": r.round_trips,
                }
            )
        points.append(point)
    return points


DEFAULT_SIMULATED = ((10**7, 0), (10**7, 10), (10**7, 20), (10**7, 30), (10**8, 50), (10**8, 70))


def run_qkd_benchmark(
    sessions: int = 8,
    rtt_ms: float = 5.0,
    reconciliation_bits: int = 30_000,
    reconciliation_trials: int = 10,
    ldpc_frames: int = 0,
    distances: Sequence[int] = DISTANCES_KM,
    simulated: Sequence[tuple[int, int]] = DEFAULT_SIMULATED,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure sessions, reconciliation and the finite-key rate against distance;
    ``simulated`` lists the (pulses, km) points where a real session is run;
    ``ldpc_frames`` > 0 also runs LDPC alone on that many frames per QBER, for the
    residual frame error and its upper bound."""
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    frames = reconciliation_figures(reconciliation_bits, ldpc_frames, say, methods=("ldpc",)) if ldpc_frames else {}
    report: dict[str, Any] = {
        "sessions": [_sessions(m, sessions, rtt_ms, say) for m in ("ldpc", "cascade")],
        "rtt_ms": rtt_ms,
        "reconciliation": reconciliation_figures(reconciliation_bits, reconciliation_trials, say),
        "ldpc_frames": frames,
        "ldpc_frames_pooled": pooled_frame_errors(frames) if frames else {},
        "key_rate_vs_distance": _key_rate(distances, simulated, say),
        "claimed_qkd_delay_ms": 2.0,
    }
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report


def plot_qkd_benchmark(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = report["key_rate_vs_distance"]
    km = [p["distance_km"] for p in pts]
    fig, ax = plt.subplots(figsize=(8, 5))
    floor = 1e-10

    def curve(values: list[float]) -> list[float]:
        return [v if v > 0 else math.nan for v in values]

    ax.semilogy(
        km,
        curve([p["infinite_decoy_bits_per_pulse"] for p in pts]),
        "k--",
        label="same protocol, infinite decoys, N → ∞",
    )
    ax.semilogy(
        km,
        curve([p["unbiased_bb84_infinite_decoy_bits_per_pulse"] for p in pts]),
        "--",
        color="grey",
        label="textbook decoy BB84 (unbiased bases, μ = 0.5), N → ∞",
    )
    ax.semilogy(km, curve([p["three_intensity_limit_bits_per_pulse"] for p in pts]), "k:", label="Lim bound, N → ∞")
    for n in BLOCK_PULSES:
        ax.semilogy(
            km,
            curve([p["finite_key_bound_bits_per_pulse"][str(n)] for p in pts]),
            "-",
            label=f"Lim bound, N = 10^{round(math.log10(n))}",
        )
    sim = [(p["distance_km"], s["bits_per_pulse"]) for p in pts for s in p.get("simulated", []) if s["final_bits"] > 0]
    if sim:
        ax.semilogy(*zip(*sim, strict=True), "o", color="red", label="our sessions (LDPC)")
    ax.set_xlabel("fibre length (km)")
    ax.set_ylabel("secret key bits per pulse")
    ax.set_ylim(floor, 1e-1)
    ax.set_title("Finite-key rate vs distance (eps_sec = 1e-10, eps_cor = 1e-15)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
