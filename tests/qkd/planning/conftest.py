"""Tiny instances shared by the planning tests."""

from __future__ import annotations

import numpy as np
import pytest

from qkd.planning.model import Network, Provider, Request, Scenarios
from qkd.planning.topology import Link, Topology

TRIANGLE = Topology("triangle", ("a", "b", "c"), (Link("a", "b", 100.0), Link("b", "c", 250.0), Link("a", "c", 400.0)))


def fixed_scenarios(rates: list[list[float]], probs: list[float] | None = None) -> Scenarios:
    arr = np.array(rates, dtype=float)
    p = np.full(arr.shape[0], 1.0 / arr.shape[0]) if probs is None else np.array(probs)
    return Scenarios(arr, p)


def tiny_network(qkd: int = 30, km: int = 10, rate_high: float = 20_000.0, w_max_qkd: int = 1000) -> Network:
    p1 = Provider("p1", qkd, km, (Request("p1/ac", "p1", "a", "c", 1_000.0, rate_high),))
    p2 = Provider("p2", qkd, km, (Request("p2/bc", "p2", "b", "c", 1_000.0, rate_high),))
    return Network(TRIANGLE, (p1, p2), w_max_qkd=w_max_qkd)


@pytest.fixture
def network() -> Network:
    return tiny_network()
