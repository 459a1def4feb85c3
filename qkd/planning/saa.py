"""Sample-average approximation (Mak, Morton & Wood 1999) with confidence intervals.

``batches`` independent scenario samples of ``scenarios`` each are solved; the mean of their
optimal costs estimates a lower bound on the true optimum, with a Student-t interval. The
first batch's first stage, evaluated on a fresh sample of ``evaluation_scenarios``, gives an
upper bound estimate with its own interval; when that plan cannot serve some evaluation
scenario within W_max (its routes are full), the upper bound is infinite, as the EEV is in
:mod:`qkd.planning.bounds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from qkd.planning.errors import InfeasiblePlan, InvalidModel
from qkd.planning.model import Network
from qkd.planning.stochastic import problem_for, scenario_costs, solve


@dataclass(frozen=True)
class SaaResult:
    batch_costs: tuple[float, ...]
    lower_mean: float
    lower_ci: tuple[float, float]
    upper_mean: float
    upper_ci: tuple[float, float]
    confidence: float

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "batch_costs": list(self.batch_costs),
            "lower_bound_mean": self.lower_mean,
            "lower_bound_ci": list(self.lower_ci),
            "upper_bound_mean": num(self.upper_mean),
            "upper_bound_ci": [num(x) for x in self.upper_ci],
            "confidence": self.confidence,
        }


def _interval(xs: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(xs) < 2:
        return (float(xs.mean()), float(xs.mean()))
    half = float(stats.t.ppf((1 + confidence) / 2, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return (float(xs.mean()) - half, float(xs.mean()) + half)


def saa(
    network: Network,
    scenarios: int,
    batches: int,
    seed: int = 0,
    evaluation_scenarios: int = 500,
    confidence: float = 0.95,
) -> SaaResult:
    """SAA bounds for the grand coalition (upper bound ``inf`` when the first batch's plan cannot
    serve an evaluation scenario). Raises :class:`InvalidModel` for fewer than 2 batches,
    :class:`InfeasiblePlan` when a batch itself has no plan."""
    if batches < 2 or scenarios < 1 or evaluation_scenarios < 2:
        raise InvalidModel("SAA needs at least 2 batches, 1 scenario each and 2 evaluation scenarios")
    costs, first = [], None
    for b in range(batches):
        sol = solve(problem_for(network, None, network.sample(scenarios, seed + 1000 + b)))
        costs.append(sol.cost)
        first = first or sol
    assert first is not None
    evaluation = problem_for(network, None, network.sample(evaluation_scenarios, seed + 999_999))
    lower = np.array(costs)
    try:
        fixed = solve(evaluation, fixed=first.first_stage)
    except InfeasiblePlan:
        inf = math.inf
        return SaaResult(tuple(costs), float(lower.mean()), _interval(lower, confidence), inf, (inf, inf), confidence)
    # the fixed plan's cost in each scenario gives the upper bound's spread
    per = scenario_costs(evaluation, fixed.first_stage).sum(axis=1)
    return SaaResult(
        tuple(costs),
        float(lower.mean()),
        _interval(lower, confidence),
        fixed.cost,
        _interval(per, confidence),
        confidence,
    )
