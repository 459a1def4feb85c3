"""Measure pseudonym signing and (batch) verification next to plain ECDSA.

Library code behind ``qkdchain bench ibc`` and ``scripts/bench_ibc.py``. The ECDSA
figures come from coincurve in the same run, so ratios survive a noisy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from vehicles.ibc.authority import TrustedAuthority
from vehicles.ibc.batch import batch_verify
from vehicles.ibc.curve import SeededRng
from vehicles.ibc.message import SignedMessage
from vehicles.ibc.signature import sign, verify_signature

DEFAULT_BATCH_SIZES = (1, 10, 100, 1000)
MESSAGE_BYTES = 64  # a CAM/BSM-sized payload digest plus headers


def _per_op_us(fn: Callable[[], object], ops: int, min_time_s: float) -> float:
    """Best of repeated timings of ``fn`` (which performs ``ops`` operations), in µs per op."""
    best = float("inf")
    spent = 0.0
    runs = 0
    while spent < min_time_s or runs < 3:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        runs += 1
    return best / ops * 1e6


def run_ibc_benchmark(
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    min_time_s: float = 0.5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time sign / verify / batch verify and ECDSA sign / verify; returns the JSON report."""
    say = progress or (lambda _m: None)
    rng = SeededRng(seed)
    ta = TrustedAuthority(rng=rng)
    creds = [ta.issue(i.to_bytes(32, "big")) for i in range(16)]
    n = max(max(batch_sizes), 200)
    messages = [rng.randbelow(1 << (8 * MESSAGE_BYTES)).to_bytes(MESSAGE_BYTES, "big") for _ in range(n)]
    now_ms = 1_800_000_000_000
    signed: list[SignedMessage] = []

    say("IBC sign")

    def do_sign() -> None:
        signed.clear()
        signed.extend(sign(creds[i % 16], messages[i], now_ms + i) for i in range(n))

    sign_us = _per_op_us(do_sign, n, min_time_s)
    say("IBC verify")
    sample = signed[:200]
    verify_us = _per_op_us(lambda: all(verify_signature(s, ta.public_key) for s in sample), len(sample), min_time_s)
    encoded = [s.encode() for s in sample]
    decode_us = _per_op_us(lambda: [SignedMessage.decode(e) for e in encoded], len(encoded), min_time_s / 4)
    batch: dict[str, float] = {}
    for size in batch_sizes:
        say(f"IBC batch verify, batch size {size}")
        chunk = signed[:size]
        batch[str(size)] = _per_op_us(partial(batch_verify, chunk, ta.public_key, rng), size, min_time_s)

    say("ECDSA (coincurve) sign and verify")
    key = PrivateKey()
    digests = [m[:32] for m in messages[:200]]
    sigs: list[bytes] = []

    def ecdsa_sign() -> None:
        sigs.clear()
        sigs.extend(key.sign(d, hasher=None) for d in digests)

    ecdsa_sign_us = _per_op_us(ecdsa_sign, len(digests), min_time_s)
    pub = key.public_key
    ecdsa_verify_us = _per_op_us(
        lambda: all(pub.verify(s, d, hasher=None) for s, d in zip(sigs, digests, strict=True)),
        len(digests),
        min_time_s,
    )
    return {
        "message_bytes": MESSAGE_BYTES,
        "sign_us": round(sign_us, 2),
        "verify_us": round(verify_us, 2),
        "decode_us": round(decode_us, 2),
        "batch_verify_us_per_sig": {k: round(v, 2) for k, v in batch.items()},
        "batch_speedup": {k: round(verify_us / v, 2) for k, v in batch.items()},
        "ecdsa_sign_us": round(ecdsa_sign_us, 2),
        "ecdsa_verify_us": round(ecdsa_verify_us, 2),
        "signatures_per_s": round(1e6 / sign_us),
        "verifications_per_s": round(1e6 / verify_us),
        "batch_verifications_per_s": {k: round(1e6 / v) for k, v in batch.items()},
    }


def plot_ibc_benchmark(report: dict[str, Any], path: Path) -> Path:
    """Save µs per signature versus batch size, with single verify and ECDSA as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(k) for k in report["batch_verify_us_per_sig"]]
    per_sig = list(report["batch_verify_us_per_sig"].values())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sizes, per_sig, "o-", label="IBC batch verify (per signature)")
    ax.axhline(report["verify_us"], color="C1", ls="--", label=f"IBC single verify ({report['verify_us']:.0f} µs)")
    ax.axhline(report["sign_us"], color="C2", ls=":", label=f"IBC sign ({report['sign_us']:.0f} µs)")
    ax.axhline(
        report["ecdsa_verify_us"], color="C3", ls="-.", label=f"ECDSA verify ({report['ecdsa_verify_us']:.0f} µs)"
    )
    ax.set_xscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("µs per signature")
    ax.set_ylim(0, max(report["verify_us"], *per_sig) * 1.35)
    ax.set_title("Pseudonym signatures on secp256k1 (coincurve), one core")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
