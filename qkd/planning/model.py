"""The planning model as data: requests, providers, the network they share, and demand scenarios.

A :class:`Request` is a source-destination pair whose secret-key rate (bit/s) is uniform
on ``[rate_low_bps, rate_high_bps]`` (the seed draws key-rate demand uniformly). A
:class:`Provider` brings ``qkd_wavelengths`` and ``km_wavelengths`` of pool capacity on every
link (seed: 10/15/20 QKD and 40/55/65 KM) and its customers' requests; the optional
cooperation costs are the seed's eq. 9-10 (``C^qkd``, ``C^kmw`` per shared wavelength) and
``C^coc``. A :class:`Network` is the whole game: topology, providers, costs, physics, the
fibre limits W_max (1,000 QKD and 300 KM wavelengths per link) and ``k`` candidate routes.
:class:`Scenarios` are sampled once for every request of the network, so every coalition
sees the same draws (common random numbers: coalition costs differ by the coalition, not by
sampling noise).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qkd.planning.costs import CostTable, load_costs
from qkd.planning.errors import InvalidModel, MalformedFile
from qkd.planning.linkrate import LinkPhysics
from qkd.planning.topology import Topology

Route = tuple[str, ...]

SEED_CAPACITIES = (("provider1", 10, 40), ("provider2", 15, 55), ("provider3", 20, 65))
DEFAULT_RATE_BPS = (2_000.0, 20_000.0)  # ours: the seed's Fig. 7(a) spans 1-10 kb/s per request
DEFAULT_REQUESTS_PER_PROVIDER = 2
# separate random streams for the default requests and the scenarios: with one seed for both,
# the first scenario draws would repeat the bits that picked the request pairs
_REQUEST_STREAM, _SCENARIO_STREAM = 0x5EED_0001, 0x5EED_0002


@dataclass(frozen=True)
class Request:
    """One provider's key-rate demand between two nodes. :class:`InvalidModel` if the bounds are bad."""

    name: str
    provider: str
    source: str
    destination: str
    rate_low_bps: float
    rate_high_bps: float

    def __post_init__(self) -> None:
        lo, hi = self.rate_low_bps, self.rate_high_bps
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise InvalidModel(f"request {self.name}: need 0 <= rate_low <= rate_high, got {lo}, {hi}")
        if self.source == self.destination:
            raise InvalidModel(f"request {self.name}: source and destination are both {self.source}")


@dataclass(frozen=True)
class Provider:
    """A QKD service provider. :class:`InvalidModel` for negative capacities or costs."""

    name: str
    qkd_wavelengths: int
    km_wavelengths: int
    requests: tuple[Request, ...]
    share_cost_qkd: float = 0.0
    share_cost_km: float = 0.0
    cooperation_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.qkd_wavelengths < 0 or self.km_wavelengths < 0:
            raise InvalidModel(f"provider {self.name}: capacities must be non-negative")
        if min(self.share_cost_qkd, self.share_cost_km, self.cooperation_cost) < 0:
            raise InvalidModel(f"provider {self.name}: cooperation costs must be non-negative")

    @property
    def cooperation_overhead(self) -> float:
        """What this provider pays for being in a coalition of two or more (seed eq. 9-10 + C^coc)."""
        return (
            self.qkd_wavelengths * self.share_cost_qkd
            + self.km_wavelengths * self.share_cost_km
            + self.cooperation_cost
        )


@dataclass(frozen=True, eq=False)
class Scenarios:
    """``rates_bps[s, f]``: the key rate request ``f`` asks for in scenario ``s``; ``probabilities[s]``."""

    rates_bps: NDArray[np.float64]
    probabilities: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.rates_bps.ndim != 2 or self.probabilities.shape != (self.rates_bps.shape[0],):
            raise InvalidModel("scenario rates must be (scenarios, requests) with one probability per scenario")
        if self.rates_bps.shape[0] == 0 or abs(float(self.probabilities.sum()) - 1) > 1e-9:
            raise InvalidModel("need at least one scenario and probabilities summing to 1")

    @property
    def count(self) -> int:
        return int(self.rates_bps.shape[0])

    def columns(self, indices: list[int]) -> Scenarios:
        return Scenarios(self.rates_bps[:, indices], self.probabilities)

    def expected(self) -> Scenarios:
        """The expected-value scenario (one scenario at the mean rates): the EV problem's input."""
        mean = (self.probabilities[:, None] * self.rates_bps).sum(axis=0, keepdims=True)
        return Scenarios(mean, np.ones(1))

    def single(self, s: int) -> Scenarios:
        """Scenario ``s`` alone with probability 1 (wait-and-see)."""
        return Scenarios(self.rates_bps[s : s + 1], np.ones(1))


@dataclass(frozen=True)
class Network:
    """The whole planning game. :class:`UnknownNode` for a request off the topology,
    :class:`InvalidModel` for duplicate names, no request at all or bad limits. A provider may
    have no requests of its own: it then brings only pool capacity to a coalition."""

    topology: Topology
    providers: tuple[Provider, ...]
    costs: CostTable = field(default_factory=load_costs)
    physics: LinkPhysics = field(default_factory=LinkPhysics)
    w_max_qkd: int = 1000
    w_max_km: int = 300
    k_routes: int = 3

    def __post_init__(self) -> None:
        names = [p.name for p in self.providers]
        if not names or len(set(names)) != len(names):
            raise InvalidModel("need at least one provider and unique provider names")
        requests = self.requests
        if not requests:
            raise InvalidModel("no provider has a request: there is no demand to plan for")
        if len({r.name for r in requests}) != len(requests):
            raise InvalidModel("request names must be unique")
        for r in requests:
            self.topology.check_node(r.source)
            self.topology.check_node(r.destination)
        if self.w_max_qkd < 0 or self.w_max_km < 0 or self.k_routes < 1:
            raise InvalidModel("W_max must be non-negative and k_routes at least 1")

    @property
    def requests(self) -> tuple[Request, ...]:
        return tuple(r for p in self.providers for r in p.requests)

    @property
    def player_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    def provider(self, name: str) -> Provider:
        for p in self.providers:
            if p.name == name:
                return p
        raise InvalidModel(f"no provider {name!r}")

    def routes(self, request: Request) -> list[Route]:
        return self.topology.k_shortest_paths(request.source, request.destination, self.k_routes)

    def sample(self, count: int, seed: int) -> Scenarios:
        """``count`` equiprobable scenarios, each request's rate uniform on its bounds (seeded).

        Raises :class:`InvalidModel` for ``count < 1``.
        """
        if count < 1:
            raise InvalidModel(f"need at least one scenario, got {count}")
        rng = np.random.default_rng((seed, _SCENARIO_STREAM))
        lo = np.array([r.rate_low_bps for r in self.requests])
        hi = np.array([r.rate_high_bps for r in self.requests])
        rates = lo + (hi - lo) * rng.random((count, len(lo)))
        return Scenarios(rates, np.full(count, 1.0 / count))


def default_providers(
    topology: Topology,
    seed: int = 0,
    per_provider: int = DEFAULT_REQUESTS_PER_PROVIDER,
    rate_bps: tuple[float, float] = DEFAULT_RATE_BPS,
) -> tuple[Provider, ...]:
    """The seed's three providers (10/15/20 QKD, 40/55/65 KM wavelengths), each with
    ``per_provider`` requests between distinct random node pairs of ``topology`` (seeded)."""
    rng = np.random.default_rng((seed, _REQUEST_STREAM))
    pairs = [(a, b) for i, a in enumerate(topology.nodes) for b in topology.nodes[i + 1 :]]
    picks = rng.choice(len(pairs), size=len(SEED_CAPACITIES) * per_provider, replace=False)
    providers = []
    for j, (name, qkd, km) in enumerate(SEED_CAPACITIES):
        mine = picks[j * per_provider : (j + 1) * per_provider]
        requests = tuple(Request(f"{name}/r{i}", name, *pairs[int(p)], *rate_bps) for i, p in enumerate(mine, start=1))
        providers.append(Provider(name, qkd, km, requests))
    return tuple(providers)


def providers_from_json(data: Any, path: str = "<data>") -> tuple[Provider, ...]:
    """Providers from ``[{"name", "qkd_wavelengths", "km_wavelengths", "requests": [{"source",
    "destination", "rate_low_bps", "rate_high_bps"}...], optional "share_cost_qkd",
    "share_cost_km", "cooperation_cost"}...]``.

    Raises :class:`MalformedFile` for a wrong shape, :class:`InvalidModel` for bad values.
    """
    if not isinstance(data, list):
        raise MalformedFile(path, "expected a list of providers")
    providers = []
    try:
        for item in data:
            name = str(item["name"])
            requests = tuple(
                Request(
                    str(r.get("name", f"{name}/r{i}")),
                    name,
                    str(r["source"]),
                    str(r["destination"]),
                    float(r["rate_low_bps"]),
                    float(r["rate_high_bps"]),
                )
                for i, r in enumerate(item["requests"], start=1)
            )
            providers.append(
                Provider(
                    name,
                    _whole(item["qkd_wavelengths"]),
                    _whole(item["km_wavelengths"]),
                    requests,
                    float(item.get("share_cost_qkd", 0.0)),
                    float(item.get("share_cost_km", 0.0)),
                    float(item.get("cooperation_cost", 0.0)),
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidModel):
            raise
        raise MalformedFile(path, f"bad provider entry ({exc!r})") from exc
    return tuple(providers)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TypeError(f"expected a whole number, got {value!r}")
    return int(value)


def providers_to_json(providers: tuple[Provider, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "qkd_wavelengths": p.qkd_wavelengths,
            "km_wavelengths": p.km_wavelengths,
            "share_cost_qkd": p.share_cost_qkd,
            "share_cost_km": p.share_cost_km,
            "cooperation_cost": p.cooperation_cost,
            "requests": [
                {
                    "name": r.name,
                    "source": r.source,
                    "destination": r.destination,
                    "rate_low_bps": r.rate_low_bps,
                    "rate_high_bps": r.rate_high_bps,
                }
                for r in p.requests
            ],
        }
        for p in providers
    ]


def load_providers(path: str | Path) -> tuple[Provider, ...]:
    """Providers from a JSON file (see :func:`providers_from_json`); :class:`MalformedFile` if unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MalformedFile(str(path), f"not a readable JSON provider list ({exc})") from exc
    return providers_from_json(data, str(path))
