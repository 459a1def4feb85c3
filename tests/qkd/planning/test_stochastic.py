from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from qkd.planning.bounds import bounds
from qkd.planning.errors import InfeasiblePlan, InvalidModel, MalformedFile, SolverFailed, UnknownNode
from qkd.planning.model import Network, Provider, Request, load_providers
from qkd.planning.shapley import exact_shapley, memoised
from qkd.planning.stochastic import Problem, problem_for, scenario_costs, solve
from qkd.planning.topology import Link, Topology

from .conftest import fixed_scenarios, tiny_network

LINE = Topology("line", ("a", "b"), (Link("a", "b", 100.0),))


def line_network(qkd: int, km: int, requests: int = 1, w_max_qkd: int = 1000, w_max_km: int = 300) -> Network:
    reqs = tuple(Request(f"p/{i}", "p", "a", "b", 0.0, 1e9) for i in range(requests))
    return Network(LINE, (Provider("p", qkd, km, reqs),), w_max_qkd=w_max_qkd, w_max_km=w_max_km)


def test_one_link_one_scenario_by_hand() -> None:
    net = line_network(30, 10)
    k = net.physics.link_rate_bps(100.0)
    sol = solve(problem_for(net, None, fixed_scenarios([[2.5 * k]])))  # P = 3: 9 QKD, 3 KM wavelengths
    # QKD wavelength on 100 km, 1 span: (2·1500 + 2250)/3 + 100 = 1,850 reserved and again when used
    # KM wavelength: 2·1200 + 0·150 + 1·300 + 100 = 2,800
    assert sol.cost == pytest.approx(9 * 3700 + 3 * 5600)
    assert sol.first_stage.reserved_qkd[("a", "b")] == 9 and sol.first_stage.reserved_km[("a", "b")] == 3
    assert sol.on_demand_cost == 0


def test_pool_capacity_forces_on_demand_by_hand() -> None:
    net = line_network(6, 10)
    k = net.physics.link_rate_bps(100.0)
    sol = solve(problem_for(net, None, fixed_scenarios([[2.5 * k]])))
    # 6 reserved and used (3,700 each), 3 on demand at (2·6000 + 9000)/3 + 4·100 = 7,400
    assert sol.first_stage.reserved_qkd[("a", "b")] == 6
    assert sol.cost == pytest.approx(6 * 3700 + 3 * 7400 + 3 * 5600)
    assert sol.on_demand_cost == pytest.approx(3 * 7400)


def test_provider_without_requests_brings_only_capacity_by_hand() -> None:
    owner = Provider("owner", 6, 10, (Request("owner/ab", "owner", "a", "b", 0.0, 1e9),))
    lender = Provider("lender", 30, 10, ())
    net = Network(LINE, (owner, lender))
    k = net.physics.link_rate_bps(100.0)
    rates = fixed_scenarios([[2.5 * k]])  # 9 QKD and 3 KM wavelengths
    v = memoised(lambda c: solve(problem_for(net, c, rates)).cost)
    assert v(frozenset({"lender"})) == 0  # no demand, nothing bought, no MILP
    assert v(frozenset({"owner"})) == pytest.approx(6 * 3700 + 3 * 7400 + 3 * 5600)  # as in the test above
    assert v(frozenset({"owner", "lender"})) == pytest.approx(9 * 3700 + 3 * 5600)  # the pool covers all 9
    shares = exact_shapley(["owner", "lender"], v)
    assert shares["lender"] == pytest.approx((9 * 3700 - 6 * 3700 - 3 * 7400) / 2)  # paid for its capacity
    assert sum(shares.values()) == pytest.approx(v(frozenset({"owner", "lender"})))


def test_newsvendor_by_hand() -> None:
    net = line_network(30, 10)
    k = net.physics.link_rate_bps(100.0)
    # P = 1 with probability 0.7, P = 3 with 0.3: reserving a 4th..9th QKD wavelength costs 1,850 and
    # saves 0.3·(7,400 - 1,850) = 1,665 < 1,850, so reserve 3 (and 1 KM: 2,800 > 0.3·(7,300 - 2,800))
    sol = solve(problem_for(net, None, fixed_scenarios([[0.5 * k], [2.5 * k]], [0.7, 0.3])))
    assert sol.first_stage.reserved_qkd[("a", "b")] == 3
    assert sol.first_stage.reserved_km[("a", "b")] == 1
    assert sol.cost == pytest.approx(24_420 + 9_980)


def brute_force(problem: Problem) -> float:
    """Every route combination and every reservation level, with the cost written out afresh."""
    net, c = problem.network, problem.network.costs
    topo = net.topology
    rates, probs = problem.scenarios.rates_bps, problem.scenarios.probabilities
    best = math.inf
    for combo in itertools.product(*problem.routes):
        load: dict[tuple[str, str], np.ndarray] = {}
        for f, path in enumerate(combo):
            for a, b in itertools.pairwise(path):
                link = topo.links[topo.link_index(a, b)]
                p = np.ceil(rates[:, f] / net.physics.link_rate_bps(link.km) - 1e-12)
                load[link.key] = load.get(link.key, 0) + p
        total = 0.0
        for key, p in load.items():
            link = topo.links[topo.link_index(*key)]
            g = net.physics.segments(link.km)
            for per, cap, wmax, fn in ((3, problem.cap_qkd, net.w_max_qkd, "qkd_wavelength"),
                                       (1, problem.cap_km, net.w_max_km, "km_wavelength")):  # fmt: skip
                need = per * p
                if need.max() > wmax:
                    total = math.inf
                    break
                pr, pe, po = (
                    getattr(getattr(c, ph), fn)(g, link.km) for ph in ("reservation", "utilization", "on_demand")
                )
                total += min(
                    pr * y + float(probs @ (pe * np.minimum(need, y) + po * np.maximum(need - y, 0)))
                    for y in range(min(cap, int(need.max())) + 1)
                )
        best = min(best, total)
    return best


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_deterministic_equivalent_matches_brute_force(seed: int) -> None:
    net = tiny_network(qkd=12, km=4)
    problem = problem_for(net, None, net.sample(4, seed))
    assert solve(problem).cost == pytest.approx(brute_force(problem), rel=1e-9)


def test_fibre_limit_changes_the_routes_like_brute_force() -> None:
    # at 40 kbit/s each request needs 6 QKD wavelengths on b-c; W_max 10 keeps them from sharing it
    solutions = {}
    for w_max in (1000, 10):
        net = tiny_network(qkd=40, km=10, w_max_qkd=w_max)
        problem = problem_for(net, None, fixed_scenarios([[40_000.0, 40_000.0]]))
        solutions[w_max] = solve(problem)
        assert solutions[w_max].cost == pytest.approx(brute_force(problem), rel=1e-9)
    assert solutions[1000].first_stage.routes == {"p1/ac": ("a", "b", "c"), "p2/bc": ("b", "c")}
    assert solutions[10].first_stage.routes != solutions[1000].first_stage.routes
    assert solutions[10].cost > solutions[1000].cost


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ev_at_least_sp_at_least_ws(seed: int) -> None:
    net = tiny_network(qkd=9, km=3)
    b, sp, _ = bounds(problem_for(net, None, net.sample(8, seed)))
    assert b.eev >= b.sp * (1 - 1e-9) >= b.ws * (1 - 2e-9)
    assert b.vss >= -1e-6 * b.sp and b.evpi >= -1e-6 * b.sp
    assert sp.cost == pytest.approx(sp.reservation_cost + sp.utilization_cost + sp.on_demand_cost)


def test_closed_form_second_stage_equals_the_milp() -> None:
    net = tiny_network(qkd=12, km=4)
    problem = problem_for(net, None, net.sample(6, 3))
    sp = solve(problem)
    again = solve(problem, fixed=sp.first_stage)
    parts = problem.scenarios.probabilities @ scenario_costs(problem, sp.first_stage)
    assert again.cost == pytest.approx(sp.cost)
    assert parts.sum() == pytest.approx(sp.cost)
    assert parts[0] == pytest.approx(sp.reservation_cost)


def test_demand_beyond_w_max_on_every_route_is_named() -> None:
    net = tiny_network(rate_high=1e12)
    with pytest.raises(InfeasiblePlan) as e:
        solve(problem_for(net, None, net.sample(2, 0)))
    assert e.value.request == "p1/ac"


def test_request_between_disconnected_nodes_is_named() -> None:
    islands = Topology("islands", ("a", "b", "c", "d"), (Link("a", "b", 50.0), Link("c", "d", 50.0)))
    net = Network(islands, (Provider("p", 9, 3, (Request("p/ad", "p", "a", "d", 1.0, 2.0),)),))
    with pytest.raises(InfeasiblePlan) as e:
        problem_for(net, None, net.sample(2, 0))
    assert e.value.request == "p/ad"


def test_requests_together_beyond_w_max_is_infeasible() -> None:
    net = line_network(30, 10, requests=2)
    k = net.physics.link_rate_bps(100.0)
    rates = [[200 * k, 200 * k]]  # each needs 600 QKD / 200 KM wavelengths: fits alone, not together
    with pytest.raises(InfeasiblePlan) as e:
        solve(problem_for(net, None, fixed_scenarios(rates)))
    assert e.value.request is None


def test_unknown_node_and_bad_coalition() -> None:
    with pytest.raises(UnknownNode):
        Network(LINE, (Provider("p", 1, 1, (Request("r", "p", "a", "zz", 0.0, 1.0),)),))
    with pytest.raises(InvalidModel):  # no demand anywhere
        Network(LINE, (Provider("p", 1, 1, ()),))
    net = tiny_network()
    with pytest.raises(InvalidModel):
        problem_for(net, frozenset({"nobody"}), net.sample(1, 0))
    with pytest.raises(InvalidModel):
        Request("r", "p", "a", "b", 5.0, 1.0)


def test_solver_stopping_early_is_named() -> None:
    net = tiny_network()
    with pytest.raises(SolverFailed) as e:
        solve(problem_for(net, None, net.sample(50, 0)), time_limit_s=1e-6)
    assert e.value.status == 1  # HiGHS's time limit


def test_malformed_provider_files(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"name": "x", "qkd_wavelengths": 1.5, "km_wavelengths": 1, "requests": []}]))
    with pytest.raises(MalformedFile):
        load_providers(path)
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(MalformedFile):
        load_providers(path)
    path.write_text(json.dumps([{"name": "x", "qkd_wavelengths": -1, "km_wavelengths": 1, "requests": []}]))
    with pytest.raises(InvalidModel):
        load_providers(path)
