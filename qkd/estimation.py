"""The binary entropy, in one place (key lengths, reconciliation efficiency)."""

from __future__ import annotations

import math


def binary_entropy(p: float) -> float:
    """``h(p) = -p log2 p - (1-p) log2 (1-p)``; 0 at and outside the ends of [0, 1]."""
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)
