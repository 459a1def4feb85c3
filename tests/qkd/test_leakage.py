"""The final length never exceeds the asymptotic bound and charges the commitment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qkd.errors import SessionAborted
from qkd.estimation import binary_entropy
from qkd.leakage import COMMITMENT_BITS, LeakBudget


@given(
    st.integers(1000, 10**6),
    st.floats(0.001, 0.12),
    st.floats(0.0, 0.02),
    st.floats(1.0, 1.5),
)
def test_final_length_below_asymptotic_bound(n: int, q: float, margin: float, f: float) -> None:
    budget = LeakBudget(n, 100, q + margin, int(f * n * binary_entropy(q)) + 1)
    assert budget.final_bits <= n * (1 - 2 * binary_entropy(q))


def test_commitment_is_charged_in_full() -> None:
    with_commit = LeakBudget(10_000, 1000, 0.02, 1600)
    without = LeakBudget(10_000, 1000, 0.02, 1600, commitment_bits=0)
    assert without.final_bits - with_commit.final_bits == COMMITMENT_BITS
    assert with_commit.terms()["commitment_bits"] == COMMITMENT_BITS


def test_nothing_left_aborts_with_a_reason() -> None:
    budget = LeakBudget(2000, 200, 0.11, 1200)
    assert budget.final_bits <= 0
    with pytest.raises(SessionAborted) as exc:
        budget.require_positive()
    assert exc.value.reason == "key_length_not_positive"
    assert LeakBudget(100_000, 10_000, 0.02, 16_000).require_positive() > 0
