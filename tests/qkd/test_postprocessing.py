"""Cascade and Toeplitz hashing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd.amplification import toeplitz_hash, toeplitz_hash_reference
from qkd.cascade import LocalParities, cascade
from qkd.errors import ConfigError
from qkd.estimation import binary_entropy


def toeplitz_seed(label: bytes, n: int, m: int) -> np.ndarray:
    rng = np.random.default_rng(list(label) or [0])
    return rng.integers(0, 2, n + m - 1, dtype=np.uint8)


def _noisy(n: int, q: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    return a, a ^ (rng.random(n) < q).astype(np.uint8)


@pytest.mark.parametrize("q", [0.005, 0.01, 0.03, 0.05, 0.08, 0.10])
def test_cascade_corrects(q: float) -> None:
    for seed in range(3):
        a, b = _noisy(8192, q, seed)
        alice = LocalParities(a)
        original = b.copy()
        result = cascade(b, alice, q, seed=seed)
        assert np.array_equal(result.corrected, a)
        assert result.errors_corrected == int(np.count_nonzero(a != b))
        assert result.leaked_bits == alice.leaked_bits
        assert np.array_equal(b, original)  # Bob's input is not modified


@pytest.mark.parametrize("q", [0.01, 0.02, 0.05])
def test_cascade_efficiency_over_many_seeds(q: float) -> None:
    """Mean f = leak / (n·h(Q)) stays at or below 1.10 on 10^4-bit blocks."""
    fs = []
    for seed in range(12):
        a, b = _noisy(10_000, q, 100 + seed)
        result = cascade(b, LocalParities(a), q, seed=seed)
        assert np.array_equal(result.corrected, a)
        fs.append(result.leaked_bits / (a.size * binary_entropy(float(np.mean(a != b)))))
    assert 1.0 < float(np.mean(fs)) <= 1.10


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.data())
def test_toeplitz_matches_reference(n: int, data: st.DataObject) -> None:
    m = data.draw(st.integers(1, n))
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.uint8)
    seed = toeplitz_seed(data.draw(st.binary(min_size=1, max_size=8)), n, m)
    assert np.array_equal(toeplitz_hash(bits, seed, m), toeplitz_hash_reference(bits, seed, m))


def test_toeplitz_large_output_is_balanced() -> None:
    rng = np.random.default_rng(5)
    n, m = 200_000, 100_000
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    out = toeplitz_hash(bits, toeplitz_seed(b"session", n, m), m)
    assert out.size == m
    assert abs(out.mean() - 0.5) < 5 * 0.5 / np.sqrt(m)
    # a one-bit change in the input changes about half the output
    flipped = bits.copy()
    flipped[12345] ^= 1
    diff = np.mean(toeplitz_hash(flipped, toeplitz_seed(b"session", n, m), m) != out)
    assert 0.45 < diff < 0.55


def test_toeplitz_rejects_bad_lengths() -> None:
    bits = np.zeros(10, dtype=np.uint8)
    with pytest.raises(ConfigError):
        toeplitz_hash(bits, toeplitz_seed(b"s", 10, 11), 11)
    with pytest.raises(ConfigError):
        toeplitz_hash(bits, np.zeros(3, dtype=np.uint8), 5)
