"""Parameter estimation: disclose a random sample, bound the QBER, abort above a threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qkd.errors import ConfigError
from qkd.sifting import Sifted


@dataclass(frozen=True)
class Estimate:
    sample_bits: int
    qber: float  # observed on the sample
    qber_upper: float  # bound on the remaining key's error rate, failure prob. eps
    alice: np.ndarray  # the key bits left after removing the sample
    bob: np.ndarray


def binary_entropy(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def estimate(sifted: Sifted, sample_fraction: float, eps: float, rng: np.random.Generator) -> Estimate:
    """Reveal a random ``sample_fraction`` of the sifted bits and bound the QBER.

    The upper bound uses Serfling's inequality for sampling without replacement:
    ``Q_U = Q_k + sqrt((n + k)(k + 1) ln(1/eps) / (2 n k^2))`` for sample size ``k``
    and remaining ``n`` bits.

    Raises:
        ConfigError: the fraction leaves no sample or no key.
    """
    if not 0 < sample_fraction < 1:
        raise ConfigError("sample fraction must be in (0, 1)")
    total = sifted.length
    k = round(total * sample_fraction)
    if k < 1 or total - k < 1:
        raise ConfigError(f"{total} sifted bits cannot be split into sample and key")
    chosen = np.zeros(total, dtype=bool)
    chosen[rng.choice(total, k, replace=False)] = True
    errors = int(np.count_nonzero(sifted.alice[chosen] != sifted.bob[chosen]))
    q = errors / k
    n = total - k
    bound = q + math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k))
    return Estimate(k, q, min(bound, 0.5), sifted.alice[~chosen], sifted.bob[~chosen])
