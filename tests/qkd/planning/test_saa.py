from __future__ import annotations

import json

import numpy as np
import pytest

from qkd.planning.errors import InvalidModel
from qkd.planning.model import Network, Provider, Request
from qkd.planning.saa import saa
from qkd.planning.stochastic import problem_for, scenario_costs, solve
from qkd.planning.topology import Link, Topology

LINE = Topology("line", ("a", "b"), (Link("a", "b", 100.0),))


def line(low_k: float, high_k: float, w_max_qkd: int = 1000) -> Network:
    """One request over one 100 km link, its rate uniform on [low_k, high_k] times the link's rate."""
    k = Network(LINE, (Provider("p", 30, 10, (Request("p/0", "p", "a", "b", 0.0, 1.0),)),)).physics.link_rate_bps(100)
    request = Request("p/0", "p", "a", "b", low_k * k, high_k * k)
    return Network(LINE, (Provider("p", 30, 10, (request,)),), w_max_qkd=w_max_qkd)


def test_known_demand_gives_equal_bounds_by_hand() -> None:
    # always 2.5 links' worth: 9 QKD and 3 KM wavelengths reserved and used (see test_stochastic)
    result = saa(line(2.5, 2.5), scenarios=3, batches=3, seed=0, evaluation_scenarios=10)
    assert result.batch_costs == (50_100.0, 50_100.0, 50_100.0)
    assert result.lower_mean == result.upper_mean == pytest.approx(50_100.0)
    assert result.lower_ci == pytest.approx((50_100.0, 50_100.0))
    assert result.upper_ci == pytest.approx((50_100.0, 50_100.0))


def test_batches_and_evaluation_are_the_solves_they_claim() -> None:
    net = line(0.5, 6.0)
    result = saa(net, scenarios=5, batches=3, seed=7, evaluation_scenarios=40)
    again = [solve(problem_for(net, None, net.sample(5, 7 + 1000 + b))) for b in range(3)]
    assert result.batch_costs == pytest.approx(tuple(s.cost for s in again))
    lo, hi = result.lower_ci
    assert result.lower_mean == pytest.approx(float(np.mean(result.batch_costs)))
    assert lo < result.lower_mean < hi
    evaluation = problem_for(net, None, net.sample(40, 7 + 999_999))
    per = scenario_costs(evaluation, again[0].first_stage).sum(axis=1)
    assert result.upper_mean == pytest.approx(float(per.mean()))
    assert result.upper_ci[0] < result.upper_mean < result.upper_ci[1]


def test_plan_that_cannot_serve_an_evaluation_scenario_has_an_infinite_upper_bound() -> None:
    # W_max 27 carries at most 9 links' worth (90 % of the rates): the 2-scenario batches fit, the
    # first batch's plan meets a scenario above 9 among the 50 evaluation ones
    result = saa(line(0.0, 10.0, w_max_qkd=27), scenarios=2, batches=2, seed=1, evaluation_scenarios=50)
    assert np.isfinite(result.lower_mean) and result.upper_mean == np.inf
    doc = result.to_json()
    assert doc["upper_bound_mean"] is None and doc["upper_bound_ci"] == [None, None]
    json.dumps(doc, allow_nan=False)  # valid JSON: no Infinity


def test_bad_arguments() -> None:
    with pytest.raises(InvalidModel):
        saa(line(1.0, 2.0), scenarios=5, batches=1)
