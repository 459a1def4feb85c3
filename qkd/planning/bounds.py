"""The seed's bounds as numbers: expected value (EV / EEV), wait-and-see (WS), VSS and EVPI.

For a minimisation (Birge & Louveaux, ch. 4): ``WS ≤ SP ≤ EEV``, where

- SP is the optimal expected cost of the deterministic equivalent,
- EEV is the expected cost of the EV solution's first stage (routes and reservations optimal
  for the mean demand) when the real scenarios arrive,
- WS is the expected cost when each scenario is known before reserving;

``VSS = EEV − SP`` (what the stochastic model saves over planning for the mean) and
``EVPI = SP − WS`` (what a perfect forecast would be worth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from qkd.planning.errors import InfeasiblePlan
from qkd.planning.stochastic import Problem, Solution, solve


@dataclass(frozen=True)
class Bounds:
    sp: float
    ev: float  # the EV problem's own optimum (mean scenario)
    eev: float  # the EV first stage's expected cost over the scenarios (inf if it cannot be completed)
    ws: float

    @property
    def vss(self) -> float:
        return self.eev - self.sp

    @property
    def evpi(self) -> float:
        return self.sp - self.ws

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "sp_cost": self.sp,
            "ev_problem_cost": self.ev,
            "ev_cost": num(self.eev),
            "ws_cost": self.ws,
            "vss": num(self.vss),
            "evpi": self.evpi,
        }


def _with_scenarios(problem: Problem, scenarios: Any) -> Problem:
    return Problem(
        problem.network,
        problem.requests,
        problem.routes,
        problem.cap_qkd,
        problem.cap_km,
        scenarios,
        problem.links,
        problem.km,
        problem.segments,
    )


def expected_value(problem: Problem) -> Solution:
    """The EV problem: the deterministic problem at the mean rates. Raises :class:`InfeasiblePlan`."""
    return solve(_with_scenarios(problem, problem.scenarios.expected()))


def eev(problem: Problem, ev_solution: Solution) -> float:
    """Expected cost of ``ev_solution``'s first stage over ``problem``'s scenarios (inf when some
    scenario cannot be served within W_max on its routes)."""
    try:
        return solve(problem, fixed=ev_solution.first_stage).cost
    except InfeasiblePlan:
        return math.inf


def wait_and_see(problem: Problem) -> float:
    """``Σ_ω p_ω · v(ω)``: each scenario solved alone. Raises :class:`InfeasiblePlan`."""
    probs = problem.scenarios.probabilities
    return sum(
        float(probs[s]) * solve(_with_scenarios(problem, problem.scenarios.single(s))).cost
        for s in range(problem.scenarios.count)
    )


def bounds(problem: Problem, sp: Solution | None = None) -> tuple[Bounds, Solution, Solution]:
    """SP, EV, EEV and WS for ``problem``; returns the bounds, the SP and the EV solutions."""
    sp = sp or solve(problem)
    ev = expected_value(problem)
    return Bounds(sp.cost, ev.cost, eev(problem, ev), wait_and_see(problem)), sp, ev
