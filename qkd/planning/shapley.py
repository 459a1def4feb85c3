"""Shapley values of a cost game (seed eq. 37), exact or by permutation sampling, and their checks.

A game is ``v: frozenset[player] -> cost`` with ``v(∅) = 0``. Exact: the weighted marginal
contributions over all coalitions (``2^n`` evaluations of ``v``; fine up to about 10
players when each ``v`` is a MILP). Beyond that: Monte Carlo over random orderings (Castro,
Gómez & Tejada 2009) with the standard error of each share.

Checks (cost game, so "rational" means paying no more): efficiency ``Σ φ = v(N)``, symmetry,
dummy, individual rationality ``φ_s ≤ v({s})`` and core membership ``Σ_{s∈S} φ_s ≤ v(S)`` for
every coalition S.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qkd.planning.errors import InvalidModel

Game = Callable[[frozenset[str]], float]


def memoised(v: Game) -> Game:
    """``v`` with a cache, and ``v(∅) = 0`` without calling it."""
    cache: dict[frozenset[str], float] = {frozenset(): 0.0}

    def game(coalition: frozenset[str]) -> float:
        if coalition not in cache:
            cache[coalition] = float(v(coalition))
        return cache[coalition]

    return game


def exact_shapley(players: Sequence[str], v: Game) -> dict[str, float]:
    """Exact Shapley values. Raises :class:`InvalidModel` for no players or duplicates."""
    _check_players(players)
    n = len(players)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    values = {}
    for s in players:
        others = [p for p in players if p != s]
        total = 0.0
        for k in range(n):
            for d in itertools.combinations(others, k):
                base = frozenset(d)
                total += weight[k] * (v(base | {s}) - v(base))
        values[s] = total
    return values


def monte_carlo_shapley(
    players: Sequence[str], v: Game, samples: int, seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """Shapley values from ``samples`` random orderings: (estimates, standard errors).

    Raises :class:`InvalidModel` for no players or fewer than 2 samples.
    """
    _check_players(players)
    if samples < 2:
        raise InvalidModel("need at least 2 sampled orderings")
    rng = np.random.default_rng(seed)
    marginals: dict[str, list[float]] = {p: [] for p in players}
    for _ in range(samples):
        order = [players[i] for i in rng.permutation(len(players))]
        before: frozenset[str] = frozenset()
        cost_before = v(before)
        for p in order:
            now = before | {p}
            cost_now = v(now)
            marginals[p].append(cost_now - cost_before)
            before, cost_before = now, cost_now
    est = {p: float(np.mean(m)) for p, m in marginals.items()}
    err = {p: float(np.std(m, ddof=1) / math.sqrt(len(m))) for p, m in marginals.items()}
    return est, err


@dataclass(frozen=True)
class ShapleyResult:
    values: dict[str, float]
    stderr: dict[str, float] | None  # None when exact
    method: str

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "values": self.values, "stderr": self.stderr}


def shapley(players: Sequence[str], v: Game, max_exact: int = 10, samples: int = 200, seed: int = 0) -> ShapleyResult:
    """Exact for up to ``max_exact`` players, Monte Carlo with error bars beyond."""
    if len(players) <= max_exact:
        return ShapleyResult(exact_shapley(players, v), None, "exact")
    est, err = monte_carlo_shapley(players, v, samples, seed)
    return ShapleyResult(est, err, f"monte-carlo ({samples} orderings)")


@dataclass(frozen=True)
class AxiomReport:
    efficiency_gap: float  # Σ φ − v(N)
    symmetric_pairs_ok: bool
    dummies: tuple[str, ...]
    dummy_ok: bool
    individually_rational: dict[str, bool]
    core_violations: tuple[tuple[tuple[str, ...], float], ...]  # (coalition, Σφ − v(S) > 0)

    @property
    def in_core(self) -> bool:
        return not self.core_violations

    def to_json(self) -> dict[str, Any]:
        return {
            "efficiency_gap": self.efficiency_gap,
            "symmetry_ok": self.symmetric_pairs_ok,
            "dummies": list(self.dummies),
            "dummy_ok": self.dummy_ok,
            "individually_rational": self.individually_rational,
            "in_core": self.in_core,
            "core_violations": [{"coalition": list(c), "excess": e} for c, e in self.core_violations],
        }


def check_axioms(players: Sequence[str], v: Game, values: dict[str, float], tol: float = 1e-6) -> AxiomReport:
    """Check ``values`` against ``v`` on every coalition (``2^n`` evaluations; ``tol`` relative to v(N))."""
    _check_players(players)
    grand = frozenset(players)
    scale = max(1.0, abs(v(grand)))
    subsets = [frozenset(c) for k in range(len(players) + 1) for c in itertools.combinations(players, k)]
    sym_ok = True
    for a, b in itertools.combinations(players, 2):
        rest = [s for s in subsets if a not in s and b not in s]
        if all(abs(v(s | {a}) - v(s | {b})) <= tol * scale for s in rest) and abs(values[a] - values[b]) > tol * scale:
            sym_ok = False
    dummies = tuple(p for p in players if all(abs(v(s | {p}) - v(s)) <= tol * scale for s in subsets if p not in s))
    dummy_ok = all(abs(values[p]) <= tol * scale for p in dummies)
    rational = {p: values[p] <= v(frozenset({p})) + tol * scale for p in players}
    violations = []
    for s in subsets:
        if s:
            excess = sum(values[p] for p in s) - v(s)
            if excess > tol * scale:
                violations.append((tuple(sorted(s)), excess))
    return AxiomReport(sum(values.values()) - v(grand), sym_ok, dummies, dummy_ok, rational, tuple(violations))


def _check_players(players: Sequence[str]) -> None:
    if not players or len(set(players)) != len(players):
        raise InvalidModel("a game needs at least one player and unique names")
