"""Parameter estimation: disclose a random sample, bound the QBER, abort above a threshold."""

from __future__ import annotations

import math

import numpy as np

from qkd.errors import ConfigError


def binary_entropy(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def sample_positions(total: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted random positions of the ``fraction`` of ``total`` sifted bits to disclose.

    Raises:
        ConfigError: the fraction is outside (0, 1) or leaves no sample or no key.
    """
    if not 0 < fraction < 1:
        raise ConfigError("sample fraction must be in (0, 1)")
    k = round(total * fraction)
    if k < 1 or total - k < 1:
        raise ConfigError(f"{total} sifted bits cannot be split into sample and key")
    return np.sort(rng.choice(total, k, replace=False))


def qber_upper_bound(errors: int, k: int, n: int, eps: float) -> float:
    """Upper bound on the error rate of the ``n`` undisclosed bits, given ``errors``
    in a random sample of ``k``, failing with probability at most ``eps`` (Serfling's
    inequality for sampling without replacement):
    ``Q_k + sqrt((n + k)(k + 1) ln(1/eps) / (2 n k^2))``, capped at 1/2."""
    q = errors / k
    return min(q + math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k)), 0.5)
