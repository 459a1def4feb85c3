"""The deterministic equivalent of the two-stage stochastic program (seed eq. 11-26 / 29-36) as a MILP.

Solver: HiGHS through :func:`scipy.optimize.milp`. scipy already ships HiGHS and is a
dependency of ``qkd`` (finite-key tails), so no extra wheel is needed; ``milp`` takes
``scipy.sparse`` constraint matrices directly, and we need nothing from ``highspy``'s
incremental API (every coalition and every scenario set is a fresh model).

Model for one coalition (its requests F, the pooled capacities ``W^qkd(C) = Σ_s Q_s`` and
``W^kml(C) = Σ_s K_s`` per link), per link ``l`` of any candidate route and scenario ``ω``:

- first stage: ``x[f,r] ∈ {0,1}`` picks one of ``f``'s k shortest routes (this replaces the
  arc-flow eq. 13-16 by a path formulation over loopless candidates: one route per request,
  no loops); ``yq[l], yk[l] ∈ {0..W(C)}`` reserved QKD / KM wavelengths (eq. 23-24 cap the
  pool at W_max);
- second stage: ``uq, uk`` reserved wavelengths utilised (``u ≤ y``, eq. 32-33), ``oq, ok``
  bought on demand; ``u + o ≥ Σ_{f,r ∋ l} need[ω,f,l] · x[f,r]`` (eq. 34-35) and ``u + o ≤
  W_max`` (the fibre, eq. 30-31 with the pool bound moved to the reservation);
- cost: ``Σ_l price^r·y + Σ_ω p_ω Σ_l (price^e·u + price^o·o)`` (eq. 29) with the per-link
  wavelength prices of :mod:`qkd.planning.costs`.

Two deliberate departures from the seed's notation, both documented in the README: a
reservation belongs to a link, shared by the requests routed over it (a reserved wavelength
serves whichever request needs it in a scenario), and the energy term ``B^eng`` is left out
(the seed gives it no value). Second-stage variables are continuous: with the first stage
fixed, each link's ``(u, o)`` polytope ``{u ≤ y, u + o ≥ n, u + o ≤ W}`` has an interval
(totally unimodular) matrix and integer right-hand sides, so its vertices are integral and
the MILP's optimum equals the all-integer one (checked against brute force in the tests).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

from qkd.planning.errors import InfeasiblePlan, InvalidModel, SolverFailed
from qkd.planning.linkrate import KM_WAVELENGTHS_PER_LINK, QKD_WAVELENGTHS_PER_LINK
from qkd.planning.model import Network, Request, Route, Scenarios
from qkd.planning.topology import LinkKey

MIP_REL_GAP = 1e-7


@dataclass(frozen=True)
class FirstStage:
    """The here-and-now decision: one route per request, reserved wavelengths per link."""

    routes: dict[str, Route]
    reserved_qkd: dict[LinkKey, int]
    reserved_km: dict[LinkKey, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": {name: "-".join(r) for name, r in self.routes.items()},
            "reserved_qkd": {f"{a}-{b}": v for (a, b), v in sorted(self.reserved_qkd.items()) if v},
            "reserved_km": {f"{a}-{b}": v for (a, b), v in sorted(self.reserved_km.items()) if v},
            "total_reserved_qkd": sum(self.reserved_qkd.values()),
            "total_reserved_km": sum(self.reserved_km.values()),
        }


@dataclass(frozen=True)
class MilpSize:
    variables: int
    constraints: int
    integers: int
    nonzeros: int

    def to_json(self) -> dict[str, int]:
        return {
            "variables": self.variables,
            "constraints": self.constraints,
            "integers": self.integers,
            "nonzeros": self.nonzeros,
        }


@dataclass(frozen=True)
class Solution:
    """An optimal plan. Costs are expected values over the scenarios (currency units)."""

    cost: float
    reservation_cost: float
    utilization_cost: float
    on_demand_cost: float
    first_stage: FirstStage
    expected_on_demand_qkd: float
    expected_on_demand_km: float
    size: MilpSize
    highs_s: float
    build_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "cost": self.cost,
            "reservation_cost": self.reservation_cost,
            "utilization_cost": self.utilization_cost,
            "on_demand_cost": self.on_demand_cost,
            "first_stage": self.first_stage.to_json(),
            "expected_on_demand_qkd": self.expected_on_demand_qkd,
            "expected_on_demand_km": self.expected_on_demand_km,
            "milp": self.size.to_json(),
            "highs_s": round(self.highs_s, 4),
            "build_s": round(self.build_s, 4),
        }


@dataclass(frozen=True, eq=False)
class Problem:
    """One coalition's deterministic-equivalent inputs, with every derived array precomputed."""

    network: Network
    requests: tuple[Request, ...]
    routes: tuple[tuple[Route, ...], ...]
    cap_qkd: int
    cap_km: int
    scenarios: Scenarios
    links: tuple[LinkKey, ...]  # links on any candidate route
    km: NDArray[np.float64]
    segments: NDArray[np.int64]


def problem_for(network: Network, coalition: frozenset[str] | None, scenarios: Scenarios) -> Problem:
    """The deterministic equivalent for ``coalition`` (all providers when ``None``).

    ``scenarios`` has one column per request of the whole network (in ``network.requests``
    order). Raises :class:`InvalidModel` for an empty or unknown coalition or a scenario set of
    the wrong width, :class:`InfeasiblePlan` for a request with no route.
    """
    players = set(network.player_names) if coalition is None else set(coalition)
    if not players or not players <= set(network.player_names):
        raise InvalidModel(f"coalition {sorted(players)} is empty or names unknown providers")
    every = network.requests
    if scenarios.rates_bps.shape[1] != len(every):
        raise InvalidModel(f"scenarios have {scenarios.rates_bps.shape[1]} columns for {len(every)} requests")
    idx = [i for i, r in enumerate(every) if r.provider in players]
    requests = tuple(every[i] for i in idx)
    routes = tuple(tuple(network.routes(r)) for r in requests)
    for r, rs in zip(requests, routes, strict=True):
        if not rs:
            raise InfeasiblePlan(f"request {r.name}: {r.source} and {r.destination} are not connected", r.name)
    topo = network.topology
    links = sorted(
        {topo.links[topo.link_index(a, b)].key for rs in routes for p in rs for a, b in itertools.pairwise(p)}
    )
    km = np.array([topo.links[topo.link_index(*k)].km for k in links])
    segments = np.array([network.physics.segments(x) for x in km], dtype=np.int64)
    members = [p for p in network.providers if p.name in players]
    return Problem(
        network,
        requests,
        routes,
        sum(p.qkd_wavelengths for p in members),
        sum(p.km_wavelengths for p in members),
        scenarios.columns(idx),
        tuple(links),
        km,
        segments,
    )


def _needs(problem: Problem) -> NDArray[np.int64]:
    """``P[s, f, l]``: parallel QKD links request ``f`` needs on link ``l`` in scenario ``s``."""
    return problem.network.physics.parallel_links_many(problem.scenarios.rates_bps, [float(x) for x in problem.km])


def _route_links(problem: Problem) -> list[tuple[int, int, list[int]]]:
    """(request index, route index, link indices) for every candidate route."""
    pos = {k: i for i, k in enumerate(problem.links)}
    topo = problem.network.topology
    out = []
    for f, rs in enumerate(problem.routes):
        for r, path in enumerate(rs):
            out.append((f, r, [pos[topo.links[topo.link_index(a, b)].key] for a, b in itertools.pairwise(path)]))
    return out


def precheck(problem: Problem) -> None:
    """Raise :class:`InfeasiblePlan` naming the first request whose every route exceeds W_max alone."""
    need = _needs(problem)
    w_q, w_k = problem.network.w_max_qkd, problem.network.w_max_km
    ok = np.zeros(len(problem.requests), dtype=bool)
    for f, _r, ls in _route_links(problem):
        worst = need[:, f, ls].max()
        if QKD_WAVELENGTHS_PER_LINK * worst <= w_q and KM_WAVELENGTHS_PER_LINK * worst <= w_k:
            ok[f] = True
    for f, good in enumerate(ok):
        if not good:
            r = problem.requests[f]
            raise InfeasiblePlan(
                f"request {r.name} ({r.source}->{r.destination}, up to {r.rate_high_bps:g} bit/s) exceeds "
                f"W_max ({w_q} QKD / {w_k} KM wavelengths) on every candidate route",
                r.name,
            )


def solve(problem: Problem, fixed: FirstStage | None = None, time_limit_s: float = 600.0) -> Solution:
    """Solve the deterministic equivalent; with ``fixed``, only the second stage (evaluation).

    A coalition without requests costs 0 (no MILP is built). Raises :class:`InfeasiblePlan`
    when no plan fits W_max (or the fixed first stage does not), :class:`SolverFailed` when
    HiGHS stops for another reason.
    """
    t0 = time.perf_counter()
    if not problem.requests:  # providers that bring capacity but no demand: nothing to buy
        nothing = FirstStage({}, {}, {})
        return Solution(0.0, 0.0, 0.0, 0.0, nothing, 0.0, 0.0, MilpSize(0, 0, 0, 0), 0.0, time.perf_counter() - t0)
    if fixed is None:
        precheck(problem)
    net = problem.network
    costs = net.costs
    n_s, n_l = problem.scenarios.count, len(problem.links)
    probs = problem.scenarios.probabilities
    cand = _route_links(problem)
    n_r = len(cand)
    need = _needs(problem)
    # variable blocks: x | yq | yk | uq | oq | uk | ok  (second stage indexed s * n_l + l)
    o_yq, o_yk = n_r, n_r + n_l
    o_uq = n_r + 2 * n_l
    o_oq, o_uk, o_ok = o_uq + n_s * n_l, o_uq + 2 * n_s * n_l, o_uq + 3 * n_s * n_l
    n = o_uq + 4 * n_s * n_l

    def prices(kind: str, phase: str) -> NDArray[np.float64]:
        table = getattr(costs, phase)
        fn = table.qkd_wavelength if kind == "q" else table.km_wavelength
        return np.array([fn(int(g), float(k)) for g, k in zip(problem.segments, problem.km, strict=True)])

    c = np.zeros(n)
    c[o_yq : o_yq + n_l] = prices("q", "reservation")
    c[o_yk : o_yk + n_l] = prices("k", "reservation")
    weights = np.repeat(probs, n_l)
    c[o_uq : o_uq + n_s * n_l] = weights * np.tile(prices("q", "utilization"), n_s)
    c[o_oq : o_oq + n_s * n_l] = weights * np.tile(prices("q", "on_demand"), n_s)
    c[o_uk : o_uk + n_s * n_l] = weights * np.tile(prices("k", "utilization"), n_s)
    c[o_ok : o_ok + n_s * n_l] = weights * np.tile(prices("k", "on_demand"), n_s)

    lb, ub = np.zeros(n), np.full(n, np.inf)
    ub[:n_r] = 1
    ub[o_yq : o_yq + n_l] = min(problem.cap_qkd, net.w_max_qkd)
    ub[o_yk : o_yk + n_l] = min(problem.cap_km, net.w_max_km)
    if fixed is not None:
        _fix(problem, fixed, cand, lb, ub, o_yq, o_yk)
    integrality = np.zeros(n, dtype=np.int8)
    integrality[: n_r + 2 * n_l] = 1

    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    vals: list[NDArray[np.float64]] = []
    lo_b: list[NDArray[np.float64]] = []
    hi_b: list[NDArray[np.float64]] = []
    m = 0

    def block(
        r: NDArray[np.int64], cc: NDArray[np.int64], v: NDArray[np.float64], count: int, lo: float, hi: float
    ) -> None:
        nonlocal m
        rows.append(r + m)
        cols.append(cc)
        vals.append(v)
        lo_b.append(np.full(count, lo))
        hi_b.append(np.full(count, hi))
        m += count

    # one route per request
    f_of = np.array([f for f, _, _ in cand], dtype=np.int64)
    block(f_of, np.arange(n_r, dtype=np.int64), np.ones(n_r), len(problem.requests), 1.0, 1.0)
    sl = np.arange(n_s * n_l, dtype=np.int64)
    l_of = np.tile(np.arange(n_l, dtype=np.int64), n_s)
    one, minus = np.ones(n_s * n_l), -np.ones(n_s * n_l)
    for o_u, o_y in ((o_uq, o_yq), (o_uk, o_yk)):  # u - y <= 0
        block(
            np.concatenate([sl, sl]),
            np.concatenate([o_u + sl, o_y + l_of]),
            np.concatenate([one, minus]),
            n_s * n_l,
            -np.inf,
            0.0,
        )
    for o_u, o_o, per, wmax in (
        (o_uq, o_oq, QKD_WAVELENGTHS_PER_LINK, net.w_max_qkd),
        (o_uk, o_ok, KM_WAVELENGTHS_PER_LINK, net.w_max_km),
    ):
        # u + o - sum need * x >= 0
        rr, cc, vv = [sl, sl], [o_u + sl, o_o + sl], [one, one]
        for j, (f, _r, ls) in enumerate(cand):
            for li in ls:
                coef = per * need[:, f, li]
                rr.append(np.arange(n_s, dtype=np.int64) * n_l + li)
                cc.append(np.full(n_s, j, dtype=np.int64))
                vv.append(-coef.astype(np.float64))
        block(np.concatenate(rr), np.concatenate(cc), np.concatenate(vv), n_s * n_l, 0.0, np.inf)
        block(
            np.concatenate([sl, sl]),
            np.concatenate([o_u + sl, o_o + sl]),
            np.concatenate([one, one]),
            n_s * n_l,
            -np.inf,
            float(wmax),
        )
    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, n))
    matrix.sum_duplicates()
    size = MilpSize(n, m, int(integrality.sum()), int(matrix.nnz))
    build_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(lb, ub),
        constraints=LinearConstraint(matrix, np.concatenate(lo_b), np.concatenate(hi_b)),
        options={"disp": False, "mip_rel_gap": MIP_REL_GAP, "time_limit": time_limit_s, "presolve": True},
    )
    highs_s = time.perf_counter() - t1
    if res.status == 2:
        raise InfeasiblePlan(
            "no plan fits within W_max"
            + (" with this first stage" if fixed is not None else "")
            + " (the requests together exceed a link's fibre limit)"
        )
    if res.status != 0 or res.x is None:
        raise SolverFailed(int(res.status), str(res.message))
    xv = np.round(res.x)  # integral by construction (see the module docstring)
    parts = {
        "reservation": float(c[o_yq:o_uq] @ xv[o_yq:o_uq]),
        "utilization": float(c[o_uq:o_oq] @ xv[o_uq:o_oq] + c[o_uk:o_ok] @ xv[o_uk:o_ok]),
        "on_demand": float(c[o_oq:o_uk] @ xv[o_oq:o_uk] + c[o_ok:] @ xv[o_ok:]),
    }
    chosen = {}
    for j, (f, r, _ls) in enumerate(cand):
        if xv[j] > 0.5:
            chosen[problem.requests[f].name] = problem.routes[f][r]
    first = FirstStage(
        chosen,
        {k: int(xv[o_yq + i]) for i, k in enumerate(problem.links)},
        {k: int(xv[o_yk + i]) for i, k in enumerate(problem.links)},
    )
    return Solution(
        cost=sum(parts.values()),
        reservation_cost=parts["reservation"],
        utilization_cost=parts["utilization"],
        on_demand_cost=parts["on_demand"],
        first_stage=first,
        expected_on_demand_qkd=float(weights @ xv[o_oq:o_uk]),
        expected_on_demand_km=float(weights @ xv[o_ok:]),
        size=size,
        highs_s=highs_s,
        build_s=build_s,
    )


def _fix(
    problem: Problem,
    fixed: FirstStage,
    cand: list[tuple[int, int, list[int]]],
    lb: NDArray[np.float64],
    ub: NDArray[np.float64],
    o_yq: int,
    o_yk: int,
) -> None:
    for j, (f, r, _ls) in enumerate(cand):
        name = problem.requests[f].name
        if name not in fixed.routes:
            raise InvalidModel(f"the fixed first stage has no route for {name}")
        lb[j] = ub[j] = 1.0 if fixed.routes[name] == problem.routes[f][r] else 0.0
    for i, k in enumerate(problem.links):
        q, km = fixed.reserved_qkd.get(k, 0), fixed.reserved_km.get(k, 0)
        if q > ub[o_yq + i] or km > ub[o_yk + i]:
            raise InvalidModel(f"fixed reservation on {k} exceeds the pool")
        lb[o_yq + i] = ub[o_yq + i] = q
        lb[o_yk + i] = ub[o_yk + i] = km


def scenario_costs(problem: Problem, first: FirstStage) -> NDArray[np.float64]:
    """Cost of a fixed first stage in each scenario, ``[s, (reservation, utilization, on_demand)]``.

    The second stage in closed form (use reserved wavelengths first, buy the rest on demand),
    ignoring W_max; its probability-weighted sum equals :func:`solve` with ``fixed=first``
    whenever that is feasible (tested). Raises :class:`InvalidModel` for a request without a route.
    """
    costs = problem.network.costs
    need = _needs(problem)
    pos = {k: i for i, k in enumerate(problem.links)}
    topo = problem.network.topology
    load = np.zeros((problem.scenarios.count, len(problem.links)))
    for f, req in enumerate(problem.requests):
        if req.name not in first.routes:
            raise InvalidModel(f"the first stage has no route for {req.name}")
        for a, b in itertools.pairwise(first.routes[req.name]):
            li = pos[topo.links[topo.link_index(a, b)].key]
            load[:, li] += need[:, f, li]
    out = np.zeros((problem.scenarios.count, 3))
    for li, key in enumerate(problem.links):
        g, km = int(problem.segments[li]), float(problem.km[li])
        for per, reserved, fn in (
            (QKD_WAVELENGTHS_PER_LINK, first.reserved_qkd, "qkd_wavelength"),
            (KM_WAVELENGTHS_PER_LINK, first.reserved_km, "km_wavelength"),
        ):
            y = reserved.get(key, 0)
            demand = per * load[:, li]
            used = np.minimum(demand, y)
            out[:, 0] += getattr(costs.reservation, fn)(g, km) * y
            out[:, 1] += getattr(costs.utilization, fn)(g, km) * used
            out[:, 2] += getattr(costs.on_demand, fn)(g, km) * (demand - used)
    return out
