from __future__ import annotations

import pytest

from qkd.planning.demand import devnet_requests, per_vehicle_rate_bps
from qkd.planning.errors import InvalidModel, MalformedFile
from qkd.planning.model import default_providers
from qkd.planning.topology import NSFNET

REPORT = {"config": {"vehicles": 6, "rsus": 2}, "key_bits": {"produced": 18_249, "consumed": 5_120}}


def test_per_vehicle_rate() -> None:
    assert per_vehicle_rate_bps(REPORT, 3600.0) == pytest.approx(5120 / 6 / 3600)


def test_scaled_to_a_fleet_and_spread_over_site_pairs() -> None:
    providers, summary = devnet_requests(REPORT, NSFNET, default_providers(NSFNET), fleet=10_000, sites=4)
    requests = [r for p in providers for r in p.requests]
    assert len(requests) == 6 == summary["pairs"]
    mean = 10_000 * 5120 / 6 / 3600 / 6
    assert summary["per_pair_mean_bps"] == pytest.approx(mean)
    for r in requests:
        assert (r.rate_low_bps + r.rate_high_bps) / 2 == pytest.approx(mean)
        assert {r.source, r.destination} <= set(NSFNET.nodes[:4])
    assert sorted(p.name for p in providers) == ["provider1", "provider2", "provider3"]


def test_bad_reports_and_options() -> None:
    with pytest.raises(MalformedFile):
        per_vehicle_rate_bps({"key_bits": {}}, 3600.0)
    with pytest.raises(MalformedFile):
        per_vehicle_rate_bps({"config": {"vehicles": 0}, "key_bits": {"consumed": 5}}, 3600.0)
    with pytest.raises(InvalidModel):
        devnet_requests(REPORT, NSFNET, default_providers(NSFNET), fleet=10, sites=1)
