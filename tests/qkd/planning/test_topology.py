from __future__ import annotations

import json
from pathlib import Path

import pytest

from qkd.planning.errors import InvalidModel, MalformedFile, PlanningError, UnknownNode
from qkd.planning.topology import NSFNET, USNET, Link, Topology, load_topology

from .conftest import TRIANGLE


def test_builtin_sizes() -> None:
    assert (len(NSFNET.nodes), len(NSFNET.links)) == (14, 21)
    assert (len(USNET.nodes), len(USNET.links)) == (24, 43)
    assert all(link.km > 0 for link in (*NSFNET.links, *USNET.links))
    assert load_topology("NSFNET") is NSFNET


def test_seed_fig5_route_exists_in_usnet() -> None:
    path = ("1", "6", "9", "12", "16", "22", "23")
    assert USNET.path_km(path) == 1000 + 1200 + 1000 + 1000 + 800 + 600  # KeyError if a hop is missing


def test_usnet_is_the_published_table() -> None:
    # spot values of Xiong et al., JLT 36(9) 2018 (see the module docstring), the links where the
    # files we compared disagree, and the totals
    km = {tuple(sorted((int(link.a), int(link.b)))): link.km for link in USNET.links}
    assert (km[(1, 2)], km[(3, 4)], km[(6, 11)], km[(11, 19)], km[(21, 22)]) == (800, 250, 1900, 2600, 300)
    assert (km[(2, 3)], km[(3, 5)], km[(7, 8)], km[(16, 22)], km[(17, 18)]) == (1000, 800, 1150, 800, 800)
    assert (12, 15) not in km  # absent from the published graph (our former estimate had it)
    assert sum(km.values()) == 42_600
    degrees = sorted(sum(n in pair for pair in km) for n in range(1, 25))
    assert degrees == [2] * 3 + [3] * 10 + [4] * 5 + [5] * 6


def test_k_shortest_paths_hand_checked() -> None:
    # a-c direct is 400 km, a-b-c is 350 km
    assert TRIANGLE.k_shortest_paths("a", "c", 3) == [("a", "b", "c"), ("a", "c")]
    assert TRIANGLE.k_shortest_paths("a", "c", 1) == [("a", "b", "c")]


def test_yen_paths_are_loopless_sorted_and_distinct() -> None:
    paths = NSFNET.k_shortest_paths("1", "14", 6)
    assert len(paths) == 6 and len(set(paths)) == 6
    lengths = [NSFNET.path_km(p) for p in paths]
    assert lengths == sorted(lengths)
    assert all(len(set(p)) == len(p) and p[0] == "1" and p[-1] == "14" for p in paths)


def test_unknown_node_and_bad_links() -> None:
    with pytest.raises(UnknownNode) as e:
        NSFNET.k_shortest_paths("1", "99", 2)
    assert e.value.node == "99" and isinstance(e.value, PlanningError)
    with pytest.raises(UnknownNode):
        Topology("t", ("a",), (Link("a", "z", 1.0),))
    with pytest.raises(InvalidModel):
        Topology("t", ("a", "b"), (Link("a", "b", 1.0), Link("b", "a", 2.0)))
    with pytest.raises(InvalidModel):
        Topology("t", ("a", "b"), (Link("a", "b", -5.0),))


def test_topology_files(tmp_path: Path) -> None:
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"name": "line", "nodes": ["x", "y"], "links": [["x", "y", 50]]}))
    assert load_topology(str(good)).links[0].km == 50
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nodes": ["x"], "links": [["x"]]}))
    with pytest.raises(MalformedFile):
        load_topology(str(bad))
    with pytest.raises(MalformedFile):
        load_topology(str(tmp_path / "missing.json"))
