"""Latency summaries shared by the devnet report and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Percentiles:
    """p50/p95/p99 and mean of a sample, in the sample's unit (we use milliseconds)."""

    p50: float
    p95: float
    p99: float
    mean: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """Summarise ``values``; an empty sample gives zeros with ``count == 0``."""
        if not values:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        arr = np.asarray(values, dtype=float)
        p50, p95, p99 = np.percentile(arr, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(arr.mean()), len(values))

    def to_json(self) -> dict[str, float | int]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}
