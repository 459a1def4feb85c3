"""Privacy amplification by Toeplitz hashing, computed with an FFT convolution.

An ``m × n`` Toeplitz matrix over GF(2) is fixed by ``n + m - 1`` seed bits:
``T[i, j] = seed[i - j + n - 1]``. Then ``(T x)_i = Σ_j seed[i - j + n - 1] x_j``,
which is entry ``i + n - 1`` of the full convolution ``seed * x``; taking it mod 2
gives the output. Float64 FFTs are exact here: every sum is an integer below ``n``,
far under 2^52, and rounding recovers it. The seed is public but must be fresh and
uniform: Alice draws it from her operating system for each session
(:mod:`qkd.session`) and sends it over the authenticated channel.
"""

from __future__ import annotations

import numpy as np

from qkd.errors import ConfigError


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, m: int) -> np.ndarray:
    """Compress ``bits`` (length n) to ``m`` bits with the Toeplitz matrix of ``seed``.

    Raises:
        ConfigError: ``m`` out of ``[1, n]`` or a seed of the wrong length.
    """
    n = int(bits.size)
    if not 1 <= m <= n:
        raise ConfigError(f"output length {m} must be in [1, {n}]")
    if seed.size != n + m - 1:
        raise ConfigError(f"seed must have {n + m - 1} bits, got {seed.size}")
    size = 1 << (n + seed.size - 1).bit_length()
    conv = np.fft.irfft(np.fft.rfft(seed.astype(np.float64), size) * np.fft.rfft(bits.astype(np.float64), size), size)
    window = conv[n - 1 : n - 1 + m]
    return (np.rint(window).astype(np.int64) & 1).astype(np.uint8)


def toeplitz_hash_reference(bits: np.ndarray, seed: np.ndarray, m: int) -> np.ndarray:
    """The same map by explicit matrix product (slow; for tests)."""
    n = bits.size
    matrix = np.array([[seed[i - j + n - 1] for j in range(n)] for i in range(m)], dtype=np.int64)
    return (matrix @ bits.astype(np.int64) % 2).astype(np.uint8)
