"""Statistics of the simulated channel against theory, and the click-only simulation
against the pulse-by-pulse reference (seeded)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from qkd.bb84 import MU1, MU2, Clicks, DecoyProtocol, Eve, EveConfig, X, Z, transmit, transmit_pulses
from qkd.channel import ChannelModel, fibre, free_space_v2i
from qkd.errors import ConfigError

SINGLE = DecoyProtocol((0.5, 0.1, 0.0), (0.98, 0.01, 0.01), 0.5)  # nearly all signal, unbiased bases
Simulator = Callable[..., Clicks]
BOTH = pytest.mark.parametrize("simulate", [transmit, transmit_pulses], ids=["clicks", "pulses"])


def _bound(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9  # five standard deviations


def _sifted(c: Clicks, level: int | None = MU1) -> tuple[int, float]:
    keep = (c.alice_bases == c.bob_bases) & ((c.intensity == level) if level is not None else True)
    return int(keep.sum()), float(np.mean(c.alice_bits[keep] != c.bob_bits[keep]))


@BOTH
@pytest.mark.parametrize("channel", [fibre(10), fibre(40), free_space_v2i(0.2)], ids=["fibre10", "fibre40", "fso"])
def test_no_eve_gain_and_qber_match_the_model(simulate: Simulator, channel: ChannelModel) -> None:
    c = simulate(400_000, channel, SINGLE, rng=np.random.default_rng(1))
    signals = int(c.sent[MU1])
    gain = channel.detection_prob(0.5)
    assert abs(np.count_nonzero(c.intensity == MU1) / signals - gain) < _bound(gain, signals)
    n, qber = _sifted(c)
    assert abs(n / np.count_nonzero(c.intensity == MU1) - 0.5) < _bound(0.5, n)  # bases agree half the time
    expected = channel.expected_qber(0.5)
    assert abs(qber - expected) < _bound(expected, n)


@BOTH
def test_full_intercept_resend_gives_a_quarter(simulate: Simulator) -> None:
    channel = ChannelModel(1.0, 0.2, 0.0, 1.0, 0.0, 0.0)  # clean, so Eve's 25 % stands alone
    c = simulate(200_000, channel, SINGLE, EveConfig(Eve.INTERCEPT_RESEND, 1.0), rng=np.random.default_rng(2))
    n, qber = _sifted(c)
    assert abs(qber - 0.25) < _bound(0.25, n)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.4])
def test_partial_intercept_resend_gives_p_over_4(fraction: float) -> None:
    channel = ChannelModel(1.0, 0.2, 0.0, 1.0, 0.0, 0.0)
    c = transmit(200_000, channel, SINGLE, EveConfig(Eve.INTERCEPT_RESEND, fraction), rng=np.random.default_rng(3))
    n, qber = _sifted(c)
    assert abs(qber - fraction / 4) < _bound(fraction / 4, n)


@BOTH
def test_pns_adds_no_errors_but_changes_yields(simulate: Simulator) -> None:
    channel = fibre(50)
    protocol = DecoyProtocol((0.5, 0.1, 0.0), (0.5, 0.4, 0.1), 0.5)
    honest = simulate(1_000_000, channel, protocol, rng=np.random.default_rng(4))
    attacked = simulate(1_000_000, channel, protocol, EveConfig(Eve.PNS, 1.0), rng=np.random.default_rng(4))
    assert _sifted(attacked, None)[1] < 0.05

    def gain(c: Clicks, level: int) -> float:
        return np.count_nonzero(c.intensity == level) / int(c.sent[level])

    # Eve's lossless line inflates the multi-photon signal gain relative to decoys.
    assert gain(attacked, MU1) / gain(attacked, MU2) > 1.5 * gain(honest, MU1) / gain(honest, MU2)


def _tally(c: Clicks) -> np.ndarray:
    """Per intensity and basis pair (XX, ZZ, mixed): detections and errors."""
    rows = []
    for level in range(3):
        at = c.intensity == level
        for mask in (
            (c.alice_bases == X) & (c.bob_bases == X),
            (c.alice_bases == Z) & (c.bob_bases == Z),
            c.alice_bases != c.bob_bases,
        ):
            sel = at & mask
            rows += [np.count_nonzero(sel), np.count_nonzero(c.alice_bits[sel] != c.bob_bits[sel])]
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("eve", [EveConfig(), EveConfig(Eve.INTERCEPT_RESEND, 0.3), EveConfig(Eve.PNS, 0.5)], ids=str)
def test_click_only_draws_the_same_distribution_as_every_pulse(eve: EveConfig) -> None:
    """20 seeds of each model: every mean count (detections and errors per intensity and
    basis pair) agrees within 4.5 standard errors; the dark-count-heavy vacuum included."""
    channel = ChannelModel(20.0, 0.2, 0.0, 0.2, 2e-4, 0.02)
    protocol = DecoyProtocol((0.6, 0.2, 0.0), (0.5, 0.3, 0.2), 0.7)
    runs = 20
    a = np.array([_tally(transmit(150_000, channel, protocol, eve, np.random.default_rng(s))) for s in range(runs)])
    b = np.array(
        [_tally(transmit_pulses(150_000, channel, protocol, eve, np.random.default_rng(1000 + s))) for s in range(runs)]
    )
    se = np.sqrt((a.var(axis=0, ddof=1) + b.var(axis=0, ddof=1)) / runs) + 1e-9
    z = np.abs(a.mean(axis=0) - b.mean(axis=0)) / se
    assert float(z.max()) < 4.5, z.round(2)
    # And the test has power: 10 % more detector efficiency is seen.
    better = ChannelModel(20.0, 0.2, 0.0, 0.22, 2e-4, 0.02)
    c = np.array([_tally(transmit(150_000, better, protocol, eve, np.random.default_rng(s))) for s in range(runs)])
    se = np.sqrt((a.var(axis=0, ddof=1) + c.var(axis=0, ddof=1)) / runs) + 1e-9
    assert float((np.abs(a.mean(axis=0) - c.mean(axis=0)) / se).max()) > 4.5


def test_click_only_is_cheap_for_many_pulses() -> None:
    c = transmit(10**9, fibre(100), rng=np.random.default_rng(5))  # ~ 6·10^4 clicks, drawn alone
    assert c.pulses == 10**9 and int(c.sent.sum()) == 10**9
    assert 0 < c.detections < 10**6


def test_same_seed_same_session() -> None:
    for simulate in (transmit, transmit_pulses):
        a = simulate(10_000, fibre(10), rng=np.random.default_rng(7))
        b = simulate(10_000, fibre(10), rng=np.random.default_rng(7))
        assert np.array_equal(a.bob_bits, b.bob_bits) and np.array_equal(a.intensity, b.intensity)


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError):
        ChannelModel(distance_km=-1)
    with pytest.raises(ConfigError):
        ChannelModel(misalignment=1.5)
    with pytest.raises(ConfigError):
        DecoyProtocol((0.5, 0.6, 0.0), (0.5, 0.3, 0.2), 0.5)
    with pytest.raises(ConfigError):
        DecoyProtocol(p_x=1.0)
    with pytest.raises(ConfigError):
        EveConfig(Eve.INTERCEPT_RESEND, 2.0)
    with pytest.raises(ConfigError):
        transmit(0, fibre(1))
    with pytest.raises(ConfigError):
        transmit_pulses(-5, fibre(1))
