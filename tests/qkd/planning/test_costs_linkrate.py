from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from qkd.channel import fibre
from qkd.keyrate import decoy_rate
from qkd.planning.costs import load_costs
from qkd.planning.errors import InvalidCosts, MalformedFile
from qkd.planning.linkrate import LinkPhysics


def test_table3_defaults() -> None:
    c = load_costs()
    assert (c.reservation.transmitter, c.reservation.receiver, c.reservation.key_manager) == (1500, 2250, 1200)
    assert (c.reservation.security_infrastructure, c.reservation.mux_demux, c.reservation.channel_per_km) == (
        150,
        300,
        1,
    )
    assert c.utilization == c.reservation
    assert (c.on_demand.transmitter, c.on_demand.receiver, c.on_demand.key_manager) == (6000, 9000, 3000)
    assert (c.on_demand.security_infrastructure, c.on_demand.mux_demux, c.on_demand.channel_per_km) == (500, 900, 4)


def test_wavelength_prices_by_hand() -> None:
    r = load_costs().reservation
    # 2 spans over 300 km: 4 tx, 2 rx per QKD link of 3 wavelengths
    assert r.qkd_wavelength(2, 300.0) == pytest.approx((4 * 1500 + 2 * 2250) / 3 + 300)
    # 3 key managers, 1 SI, 3 MUX/DEMUX pairs
    assert r.km_wavelength(2, 300.0) == pytest.approx(3 * 1200 + 150 + 3 * 300 + 300)


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"on_demand": {"transmitter": -1}}, InvalidCosts),
        ({"utilization": {"receiver": "cheap"}}, InvalidCosts),
        ({"reservation": None}, MalformedFile),
    ],
)
def test_bad_cost_files(tmp_path: Path, patch: dict[str, object], error: type[Exception]) -> None:
    data: dict[str, Any] = dict(load_costs().to_json())
    for phase, change in patch.items():
        if change is None:
            del data[phase]
        else:
            data[phase].update(change)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(error):
        load_costs(path)


def test_unreadable_cost_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(MalformedFile):
        load_costs(path)


def test_link_rate_is_our_decoy_model() -> None:
    phys = LinkPhysics(mu=0.5)
    assert phys.span_rate_bps(80.0) == pytest.approx(1e9 * decoy_rate(fibre(80.0), 0.5))
    assert 160 < phys.reach_km < 200
    assert decoy_rate(fibre(phys.reach_km + 1), 0.5) == 0
    # 500 km: 4 spans of 125 km (relays every 160 km at most)
    assert phys.segments(500.0) == 4
    assert phys.link_rate_bps(500.0) == pytest.approx(phys.span_rate_bps(125.0))
    k = phys.link_rate_bps(500.0)
    assert phys.parallel_links(k, 500.0) == 1
    assert phys.parallel_links(k * 1.01, 500.0) == 2
    assert phys.parallel_links(0.0, 500.0) == 0


def test_optimised_mu_never_worse_than_fixed() -> None:
    free, fixed = LinkPhysics(), LinkPhysics(mu=0.5)
    for km in (10.0, 80.0, 150.0):
        assert free.span_rate_bps(km) >= fixed.span_rate_bps(km) * (1 - 1e-9)
    assert math.isfinite(free.reach_km)
