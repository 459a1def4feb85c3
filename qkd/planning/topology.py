"""Optical backbone topologies and loopless k-shortest routes.

Data:

- **NSFNET** (14 nodes, 21 links). The seed (Kaewpuang et al., IEEE IoT J. 2024) takes NSFNET
  and USNET from Cao et al., JSAC 39(9) 2021 [its ref. 25], without listing lengths. We use
  the link lengths in km that the optical-networking literature most commonly publishes
  for the 14-node, 21-link NSFNET (300 km to 4,800 km; e.g. 1-2: 2,100, 1-8: 4,800,
  13-14: 300), the same set RWA studies and simulators use.
- **USNET** (24 nodes, 43 links, 300 km to 2,600 km). The link lengths in km published with
  Xiong, Shi, Yang, Lv and Rouskas, "Lightpath Management in SDN-Based Elastic Optical
  Networks With Power Consumption Considerations", J. Lightwave Technol. 36(9):1650-1660,
  2018 (doi:10.1109/JLT.2017.2785410), as shipped in the topology file
  ``topology/usnet.txt`` of github.com/ljxljx020406/mat4nbd (0-based nodes, lengths in m,
  headed with that paper's title); we number the nodes from 1. Three other files of the
  same 43-link graph agree with it link for link on 40 links, and every length here is the
  majority value: ``usnet.txt`` of Limer98/AGGroomingMixedGrid (3-5: 1,000 km),
  ``data/raw/us_network.txt`` of SDNNetSim/SDON_simulator (2-3: 1,100 km; 7-8: 900 one
  way, 1,150 the other) and the matrix ``USNET.txt`` of Z-mingyu/SDON (3-5: 960; 16-22 and
  17-18: 600). The graph contains the seed's Fig. 5 route 1-6-9-12-16-22-23.

Links are undirected (a QKD link carries keys both ways); a link's key is the sorted node
pair. Routes come from Yen's algorithm over Dijkstra on km.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkd.planning.errors import InvalidModel, MalformedFile, UnknownNode

LinkKey = tuple[str, str]


def link_key(a: str, b: str) -> LinkKey:
    """The canonical (sorted) key of the undirected link between ``a`` and ``b``."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    km: float

    @property
    def key(self) -> LinkKey:
        return link_key(self.a, self.b)


@dataclass(frozen=True)
class Topology:
    """A named graph of nodes and undirected fibre links with lengths in km.

    Raises :class:`UnknownNode` for a link to an undeclared node and :class:`InvalidModel`
    for a non-positive length, a self-loop or a duplicate link.
    """

    name: str
    nodes: tuple[str, ...]
    links: tuple[Link, ...]
    _index: dict[LinkKey, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = set(self.nodes)
        if len(known) != len(self.nodes):
            raise InvalidModel(f"topology {self.name}: duplicate node names")
        index: dict[LinkKey, int] = {}
        for i, link in enumerate(self.links):
            for end in (link.a, link.b):
                if end not in known:
                    raise UnknownNode(end, self.name)
            if link.a == link.b:
                raise InvalidModel(f"topology {self.name}: self-loop at {link.a}")
            if not (math.isfinite(link.km) and link.km > 0):
                raise InvalidModel(f"topology {self.name}: link {link.a}-{link.b} has length {link.km} km")
            if link.key in index:
                raise InvalidModel(f"topology {self.name}: duplicate link {link.a}-{link.b}")
            index[link.key] = i
        object.__setattr__(self, "_index", index)

    def check_node(self, node: str) -> None:
        """Raise :class:`UnknownNode` unless ``node`` is in the topology."""
        if node not in self.nodes:
            raise UnknownNode(node, self.name)

    def link_index(self, a: str, b: str) -> int:
        """Index in :attr:`links` of the link between ``a`` and ``b`` (KeyError if none)."""
        return self._index[link_key(a, b)]

    def neighbours(self) -> dict[str, list[tuple[str, float]]]:
        adj: dict[str, list[tuple[str, float]]] = {n: [] for n in self.nodes}
        for link in self.links:
            adj[link.a].append((link.b, link.km))
            adj[link.b].append((link.a, link.km))
        return adj

    def path_km(self, path: Sequence[str]) -> float:
        return sum(self.links[self.link_index(a, b)].km for a, b in itertools.pairwise(path))

    def k_shortest_paths(self, source: str, destination: str, k: int) -> list[tuple[str, ...]]:
        """Up to ``k`` loopless paths from ``source`` to ``destination``, shortest (km) first (Yen).

        Raises :class:`UnknownNode` for an unknown end and :class:`InvalidModel` when
        ``source == destination`` or ``k < 1``. An empty list means the ends are disconnected.
        """
        self.check_node(source)
        self.check_node(destination)
        if source == destination:
            raise InvalidModel(f"a request needs two different ends, got {source} twice")
        if k < 1:
            raise InvalidModel(f"k must be at least 1, got {k}")
        adj = self.neighbours()
        first = _dijkstra(adj, source, destination, set(), set())
        if first is None:
            return []
        found: list[tuple[str, ...]] = [first]
        candidates: list[tuple[float, tuple[str, ...]]] = []
        seen = {first}
        while len(found) < k:
            last = found[-1]
            for i in range(len(last) - 1):
                spur, root = last[i], last[: i + 1]
                banned_links = {link_key(p[i], p[i + 1]) for p in found if p[: i + 1] == root and len(p) > i + 1}
                banned_nodes = set(root[:-1])
                tail = _dijkstra(adj, spur, destination, banned_nodes, banned_links)
                if tail is not None:
                    path = root[:-1] + tail
                    if path not in seen:
                        seen.add(path)
                        heapq.heappush(candidates, (self.path_km(path), path))
            if not candidates:
                break
            found.append(heapq.heappop(candidates)[1])
        return found


def _dijkstra(
    adj: dict[str, list[tuple[str, float]]],
    source: str,
    target: str,
    banned_nodes: set[str],
    banned_links: set[LinkKey],
) -> tuple[str, ...] | None:
    dist = {source: 0.0}
    prev: dict[str, str] = {}
    heap: list[tuple[float, str]] = [(0.0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if node == target:
            path = [node]
            while path[-1] != source:
                path.append(prev[path[-1]])
            return tuple(reversed(path))
        if d > dist[node]:
            continue
        for nxt, km in adj[node]:
            if nxt in banned_nodes or link_key(node, nxt) in banned_links:
                continue
            nd = d + km
            if nd < dist.get(nxt, math.inf):
                dist[nxt], prev[nxt] = nd, node
                heapq.heappush(heap, (nd, nxt))
    return None


def _numbered(name: str, count: int, edges: Iterable[tuple[int, int, float]]) -> Topology:
    nodes = tuple(str(i) for i in range(1, count + 1))
    return Topology(name, nodes, tuple(Link(str(a), str(b), float(km)) for a, b, km in edges))


NSFNET = _numbered(
    "nsfnet",
    14,
    [
        (1, 2, 2100), (1, 3, 3000), (1, 8, 4800), (2, 3, 1200), (2, 4, 1500), (3, 6, 3600), (4, 5, 1200),
        (4, 11, 3900), (5, 6, 2400), (5, 7, 1200), (6, 10, 2100), (6, 14, 3600), (7, 8, 1500), (8, 9, 1500),
        (9, 10, 1500), (9, 12, 600), (9, 13, 600), (11, 12, 1200), (11, 13, 1500), (12, 14, 600), (13, 14, 300),
    ],
)  # fmt: skip

USNET = _numbered(
    "usnet",
    24,
    [
        (1, 2, 800), (1, 6, 1000), (2, 3, 1000), (2, 6, 950), (3, 4, 250), (3, 5, 800), (3, 7, 1000),
        (4, 5, 800), (4, 7, 850), (5, 8, 1200), (6, 7, 1000), (6, 9, 1200), (6, 11, 1900), (7, 8, 1150),
        (7, 9, 1000), (8, 10, 900), (9, 10, 1000), (9, 11, 1400), (9, 12, 1000), (10, 13, 950),
        (10, 14, 850), (11, 12, 900), (11, 15, 1300), (11, 19, 2600), (12, 13, 900), (12, 16, 1000),
        (13, 14, 650), (13, 17, 1100), (14, 18, 1200), (15, 16, 600), (15, 20, 1300), (16, 17, 1000),
        (16, 21, 1000), (16, 22, 800), (17, 18, 800), (17, 22, 850), (17, 23, 1000), (18, 24, 900),
        (19, 20, 1200), (20, 21, 700), (21, 22, 300), (22, 23, 600), (23, 24, 900),
    ],
)  # fmt: skip

BUILTIN: dict[str, Topology] = {"nsfnet": NSFNET, "usnet": USNET}


def topology_from_json(data: Any, path: str = "<data>") -> Topology:
    """A topology from ``{"name": str, "nodes": [str...], "links": [[a, b, km], ...]}``.

    Raises :class:`MalformedFile` when the shape is wrong, :class:`UnknownNode` for a link to an
    undeclared node, :class:`InvalidModel` for bad lengths or duplicates.
    """
    try:
        name = str(data.get("name", Path(path).stem))
        nodes = tuple(str(n) for n in data["nodes"])
        links = tuple(Link(str(a), str(b), float(km)) for a, b, km in data["links"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedFile(path, f"expected {{name, nodes, links: [[a, b, km], ...]}} ({exc!r})") from exc
    return Topology(name, nodes, links)


def load_topology(spec: str) -> Topology:
    """``nsfnet``, ``usnet`` or a JSON file (see :func:`topology_from_json`).

    Raises :class:`MalformedFile` for an unreadable file or bad JSON.
    """
    if spec.lower() in BUILTIN:
        return BUILTIN[spec.lower()]
    try:
        data = json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MalformedFile(spec, f"not a readable JSON topology or one of {sorted(BUILTIN)} ({exc})") from exc
    return topology_from_json(data, spec)
