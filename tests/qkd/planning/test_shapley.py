from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd.planning.coalition import CoalitionCosts, form_coalitions, is_stable
from qkd.planning.errors import InvalidModel
from qkd.planning.shapley import check_axioms, exact_shapley, memoised, monte_carlo_shapley

PLAYERS = ["p1", "p2", "p3", "p4"]


def subsets(players: list[str]) -> list[frozenset[str]]:
    return [frozenset(c) for k in range(1, len(players) + 1) for c in itertools.combinations(players, k)]


costs = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@st.composite
def games(draw: st.DrawFn, n: int = 4) -> tuple[list[str], dict[frozenset[str], float]]:
    players = PLAYERS[:n]
    return players, {s: draw(costs) for s in subsets(players)}


def as_game(table: dict[frozenset[str], float]):  # type: ignore[no-untyped-def]
    return memoised(lambda s: table[s])


@settings(max_examples=60, deadline=None)
@given(games())
def test_efficiency(game: tuple[list[str], dict[frozenset[str], float]]) -> None:
    players, table = game
    values = exact_shapley(players, as_game(table))
    assert sum(values.values()) == pytest.approx(table[frozenset(players)], abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(games(3), costs)
def test_symmetry(game: tuple[list[str], dict[frozenset[str], float]], bump: float) -> None:
    _players, base = game
    # p4 is a copy of p3: v(S ∪ {p3}) = v(S ∪ {p4}) for every S without both
    table: dict[frozenset[str], float] = {}
    for s in subsets(PLAYERS):
        core = frozenset(p for p in s if p != "p4") | ({"p3"} if "p4" in s else set())
        table[s] = base[core] + (bump if {"p3", "p4"} <= s else 0.0)
    values = exact_shapley(PLAYERS, as_game(table))
    assert values["p3"] == pytest.approx(values["p4"], abs=1e-6)
    assert check_axioms(PLAYERS, as_game(table), values).symmetric_pairs_ok


@settings(max_examples=60, deadline=None)
@given(games(3))
def test_dummy(game: tuple[list[str], dict[frozenset[str], float]]) -> None:
    _players, base = game
    table = {s: base[s - {"p4"}] if s - {"p4"} else 0.0 for s in subsets(PLAYERS)}  # p4 adds nothing
    values = exact_shapley(PLAYERS, as_game(table))
    assert values["p4"] == pytest.approx(0.0, abs=1e-6)
    report = check_axioms(PLAYERS, as_game(table), values)
    assert "p4" in report.dummies and report.dummy_ok


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e4), min_size=4, max_size=4))
def test_additive_game_pays_each_its_own(weights: list[float]) -> None:
    w = dict(zip(PLAYERS, weights, strict=True))
    values = exact_shapley(PLAYERS, lambda s: sum(w[p] for p in s))
    for p in PLAYERS:
        assert values[p] == pytest.approx(w[p], abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(games(4), games(4))
def test_linearity(
    first: tuple[list[str], dict[frozenset[str], float]], second: tuple[list[str], dict[frozenset[str], float]]
) -> None:
    players, v = first
    _, w = second
    both = exact_shapley(players, as_game({s: v[s] + w[s] for s in v}))
    apart_v, apart_w = exact_shapley(players, as_game(v)), exact_shapley(players, as_game(w))
    for p in players:
        assert both[p] == pytest.approx(apart_v[p] + apart_w[p], abs=1e-6)


@st.composite
def concave_games(draw: st.DrawFn) -> tuple[dict[str, float], list[tuple[float, float]]]:
    """``v(S) = Σ_k a_k · min(w(S), c_k)``: a concave function of an additive size, so submodular."""
    weights = {p: draw(st.floats(min_value=0, max_value=100)) for p in PLAYERS}
    caps = draw(st.lists(st.tuples(st.floats(min_value=0, max_value=10), st.floats(min_value=0, max_value=400)),
                         min_size=1, max_size=4))  # fmt: skip
    return weights, caps


@settings(max_examples=60, deadline=None)
@given(concave_games())
def test_submodular_cost_games_are_shared_in_the_core(game: tuple[dict[str, float], list[tuple[float, float]]]) -> None:
    # Shapley (1971): in a concave (submodular) cost game the Shapley value lies in the core, so
    # every provider pays at most its stand-alone cost and no sub-coalition is overcharged
    weights, caps = game
    v = memoised(lambda s: sum(a * min(sum(weights[p] for p in s), c) for a, c in caps))
    values = exact_shapley(PLAYERS, v)
    report = check_axioms(PLAYERS, v, values)
    assert report.in_core and all(report.individually_rational.values())
    # and the check is not vacuous: overcharging one player beyond its stand-alone cost is caught
    worst = max(PLAYERS, key=lambda p: v(frozenset({p})) - values[p])
    slack = v(frozenset({worst})) - values[worst]
    other = next(p for p in PLAYERS if p != worst)
    bumped = dict(values, **{worst: values[worst] + slack + 1.0, other: values[other] - slack - 1.0})
    assert not check_axioms(PLAYERS, v, bumped).individually_rational[worst]


def test_concave_cost_game_is_in_the_core() -> None:
    size = {"p1": 1.0, "p2": 2.0, "p3": 3.0, "p4": 5.0}
    v = memoised(lambda s: math.sqrt(sum(size[p] for p in s)))  # submodular: sharing pays
    values = exact_shapley(PLAYERS, v)
    report = check_axioms(PLAYERS, v, values)
    assert report.in_core and all(report.individually_rational.values())
    assert abs(report.efficiency_gap) < 1e-9


def test_core_violation_is_reported() -> None:
    # pairs are cheap, the grand coalition is dear: no allocation is in the core
    v = memoised(lambda s: {1: 1.0, 2: 1.0, 3: 3.0}[len(s)])
    players = PLAYERS[:3]
    report = check_axioms(players, v, exact_shapley(players, v))
    assert not report.in_core and report.core_violations


def test_monte_carlo_within_error_bars() -> None:
    size = {p: float(i + 1) for i, p in enumerate(PLAYERS)}
    v = memoised(lambda s: sum(size[p] for p in s) ** 0.7)
    exact = exact_shapley(PLAYERS, v)
    est, err = monte_carlo_shapley(PLAYERS, v, samples=400, seed=3)
    for p in PLAYERS:
        assert abs(est[p] - exact[p]) <= 5 * err[p] + 1e-9
    assert sum(est.values()) == pytest.approx(v(frozenset(PLAYERS)))  # each ordering is efficient
    with pytest.raises(InvalidModel):
        monte_carlo_shapley(PLAYERS, v, samples=1)


def test_formation_reaches_grand_coalition_when_sharing_pays() -> None:
    v = memoised(lambda s: 10.0 * math.sqrt(len(s)))
    costs = CoalitionCosts(v, lambda _p: 0.0)
    result = form_coalitions(PLAYERS[:3], costs, seed=1)
    assert result.stable and result.partition == (frozenset(PLAYERS[:3]),)


def test_formation_stays_alone_when_cooperation_is_dear() -> None:
    v = memoised(lambda s: 10.0 * math.sqrt(len(s)))
    costs = CoalitionCosts(v, lambda _p: 100.0)
    result = form_coalitions(PLAYERS[:3], costs, seed=1)
    assert result.stable and all(len(c) == 1 for c in result.partition)
    assert not is_stable(PLAYERS[:3], (frozenset(PLAYERS[:3]),), costs)
