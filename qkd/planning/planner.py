"""The whole planning run: SP for the grand coalition, its bounds, every coalition's cost, Shapley
shares with their checks, coalition formation, SAA, and the data behind the seed's Fig. 6 and 8.

Library code behind ``qkdchain plan``; the CLI only parses options and prints.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qkd.planning.bounds import Bounds, bounds
from qkd.planning.coalition import CoalitionCosts, FormationResult, form_coalitions
from qkd.planning.model import Network, Scenarios
from qkd.planning.saa import SaaResult, saa
from qkd.planning.shapley import AxiomReport, ShapleyResult, check_axioms, memoised, shapley
from qkd.planning.stochastic import FirstStage, Problem, Solution, problem_for, scenario_costs, solve

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sweep:
    """Expected cost parts when the reservation of one kind is set to ``level`` on every used link."""

    kind: str  # "qkd" or "km"
    levels: tuple[int, ...]
    first_stage: tuple[float, ...]
    second_stage: tuple[float, ...]
    optimum_level_total: int  # the SP's own total reservation of this kind
    optimum_cost: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "levels_per_link": list(self.levels),
            "first_stage": list(self.first_stage),
            "second_stage": list(self.second_stage),
            "total": [a + b for a, b in zip(self.first_stage, self.second_stage, strict=True)],
            "sp_total_reserved": self.optimum_level_total,
            "sp_cost": self.optimum_cost,
        }


@dataclass(frozen=True)
class PlanReport:
    topology: str
    scenarios: int
    seed: int
    sp: Solution
    bounds: Bounds
    standalone: dict[str, float]
    coalition_cost: float
    shapley: ShapleyResult
    axioms: AxiomReport | None
    formation: FormationResult | None
    saa: SaaResult | None
    sweeps: tuple[Sweep, ...]
    solve_s: float
    coalition_solves: int
    extra: dict[str, Any]

    @property
    def saving_pct(self) -> float:
        alone = sum(self.standalone.values())
        return 100.0 * (alone - self.coalition_cost) / alone if alone else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "topology": self.topology,
            "scenarios": self.scenarios,
            "seed": self.seed,
            **self.bounds.to_json(),
            "cost_parts": {
                "reservation": self.sp.reservation_cost,
                "utilization": self.sp.utilization_cost,
                "on_demand": self.sp.on_demand_cost,
            },
            "first_stage": self.sp.first_stage.to_json(),
            "milp": self.sp.size.to_json(),
            "highs_s": round(self.sp.highs_s, 4),
            "coalition_cost": self.coalition_cost,
            "standalone": self.standalone,
            "standalone_total": sum(self.standalone.values()),
            "shapley": self.shapley.values,
            "shapley_method": self.shapley.method,
            "shapley_stderr": self.shapley.stderr,
            "saving_pct": self.saving_pct,
            "axioms": self.axioms.to_json() if self.axioms else None,
            "coalition_formation": self.formation.to_json() if self.formation else None,
            "saa": self.saa.to_json() if self.saa else None,
            "fig6": [s.to_json() for s in self.sweeps],
            "solve_s": round(self.solve_s, 3),
            "coalition_solves": self.coalition_solves,
            **self.extra,
        }


def sweep(problem: Problem, sp: Solution, kind: str, points: int = 16) -> Sweep:
    """Fig. 6: keep the SP's routes and the other reservation, set this kind's reservation to the
    same level on every link of the chosen routes (capped by the pool), and price each level."""
    first = sp.first_stage
    used = {k for path in first.routes.values() for k in _path_links(problem, path)}
    cap = problem.cap_qkd if kind == "qkd" else problem.cap_km
    current = first.reserved_qkd if kind == "qkd" else first.reserved_km
    top = max(1, min(cap, 2 * max(current.values(), default=1)))
    levels = tuple(sorted({round(x) for x in np.linspace(0, top, points)}))
    fs, ss = [], []
    probs = problem.scenarios.probabilities
    for level in levels:
        res = {k: (level if k in used else 0) for k in problem.links}
        trial = replace(first, reserved_qkd=res) if kind == "qkd" else replace(first, reserved_km=res)
        parts = probs @ scenario_costs(problem, trial)
        fs.append(float(parts[0]))
        ss.append(float(parts[1] + parts[2]))
    return Sweep(kind, levels, tuple(fs), tuple(ss), sum(current.values()), sp.cost)


def _path_links(problem: Problem, path: tuple[str, ...]) -> list[tuple[str, str]]:
    topo = problem.network.topology
    return [topo.links[topo.link_index(a, b)].key for a, b in itertools.pairwise(path)]


def run_plan(
    network: Network,
    scenarios: int,
    seed: int = 0,
    saa_batches: int = 0,
    formation: bool = True,
    max_exact: int = 10,
    mc_samples: int = 200,
    progress: Progress | None = None,
    extra: dict[str, Any] | None = None,
) -> PlanReport:
    """Everything ``qkdchain plan`` reports. Raises what :func:`solve` raises (:class:`InfeasiblePlan`...)."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    sample: Scenarios = network.sample(scenarios, seed)
    problem = problem_for(network, None, sample)
    say(f"solving the deterministic equivalent ({len(problem.requests)} requests, {scenarios} scenarios)")
    sp = solve(problem)
    say("expected value (EV, EEV) and wait-and-see (WS)")
    b, _, _ = bounds(problem, sp)
    solutions: dict[frozenset[str], float] = {frozenset(network.player_names): sp.cost}

    def cost(coalition: frozenset[str]) -> float:
        if coalition not in solutions:
            say(f"coalition {{{', '.join(sorted(coalition))}}}")
            solutions[coalition] = solve(problem_for(network, coalition, sample)).cost
        return solutions[coalition]

    v = memoised(cost)
    players = list(network.player_names)
    shares = shapley(players, v, max_exact=max_exact, samples=mc_samples, seed=seed)
    standalone = {p: v(frozenset({p})) for p in players}
    axioms = check_axioms(players, v, shares.values) if len(players) <= max_exact else None
    formed = None
    if formation and len(players) <= max_exact:
        say("coalition formation")
        formed = form_coalitions(
            players, CoalitionCosts(v, lambda p: network.provider(p).cooperation_overhead), seed=seed
        )
    saa_result = None
    if saa_batches >= 2:
        say(f"sample-average approximation ({saa_batches} batches)")
        saa_result = saa(network, scenarios, saa_batches, seed)
    sweeps = (sweep(problem, sp, "qkd"), sweep(problem, sp, "km"))
    return PlanReport(
        network.topology.name,
        scenarios,
        seed,
        sp,
        b,
        standalone,
        v(frozenset(players)),
        shares,
        axioms,
        formed,
        saa_result,
        sweeps,
        time.perf_counter() - t0,
        len(solutions),
        extra or {},
    )


def first_stage_table(first: FirstStage) -> list[tuple[str, int, int]]:
    """(link, reserved QKD, reserved KM) for every link with a reservation."""
    keys = sorted(set(first.reserved_qkd) | set(first.reserved_km))
    return [
        (f"{a}-{b}", first.reserved_qkd.get((a, b), 0), first.reserved_km.get((a, b), 0))
        for a, b in keys
        if first.reserved_qkd.get((a, b), 0) or first.reserved_km.get((a, b), 0)
    ]
