"""Statistics of the simulated channel against theory (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkd.bb84 import Eve, EveConfig, SourceConfig, transmit
from qkd.channel import ChannelModel, fibre, free_space_v2i
from qkd.errors import ConfigError
from qkd.sifting import sift


def _bound(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9  # five standard deviations


@pytest.mark.parametrize("channel", [fibre(10), fibre(40), free_space_v2i(0.2)], ids=["fibre10", "fibre40", "fso"])
def test_no_eve_qber_matches_model(channel: ChannelModel) -> None:
    tx = transmit(400_000, channel, SourceConfig(mu_signal=0.5), rng=np.random.default_rng(1))
    s = sift(tx)
    expected_gain = channel.detection_prob(0.5)
    assert abs(tx.detections / tx.pulses - expected_gain) < _bound(expected_gain, tx.pulses)
    assert abs(s.length / tx.detections - 0.5) < _bound(0.5, tx.detections)  # sifted ~ half
    expected = channel.expected_qber(0.5)
    assert abs(s.true_qber - expected) < _bound(expected, s.length)


def test_full_intercept_resend_gives_a_quarter() -> None:
    channel = ChannelModel(1.0, 0.2, 0.0, 1.0, 0.0, 0.0)  # clean, so Eve's 25 % stands alone
    tx = transmit(200_000, channel, eve=EveConfig(Eve.INTERCEPT_RESEND, 1.0), rng=np.random.default_rng(2))
    s = sift(tx)
    assert abs(s.true_qber - 0.25) < _bound(0.25, s.length)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.4])
def test_partial_intercept_resend_gives_p_over_4(fraction: float) -> None:
    channel = ChannelModel(1.0, 0.2, 0.0, 1.0, 0.0, 0.0)
    tx = transmit(200_000, channel, eve=EveConfig(Eve.INTERCEPT_RESEND, fraction), rng=np.random.default_rng(3))
    s = sift(tx)
    assert abs(s.true_qber - fraction / 4) < _bound(fraction / 4, s.length)


def test_pns_adds_no_errors_but_changes_yields() -> None:
    channel = fibre(50)
    source = SourceConfig(mu_signal=0.5, decoy=True)
    honest = transmit(400_000, channel, source, rng=np.random.default_rng(4))
    attacked = transmit(400_000, channel, source, EveConfig(Eve.PNS, 1.0), rng=np.random.default_rng(4))
    assert sift(attacked).true_qber < 0.05

    # Eve's lossless line inflates the multi-photon signal gain relative to decoys.
    def gain(tx: object, level: int) -> float:
        sel = tx.intensity == level  # type: ignore[attr-defined]
        return float(tx.detected[sel].mean())  # type: ignore[attr-defined]

    assert gain(attacked, 0) / gain(attacked, 1) > 1.5 * gain(honest, 0) / gain(honest, 1)


def test_same_seed_same_session() -> None:
    a = transmit(10_000, fibre(10), rng=np.random.default_rng(7))
    b = transmit(10_000, fibre(10), rng=np.random.default_rng(7))
    assert np.array_equal(a.bob_bits, b.bob_bits) and np.array_equal(a.detected, b.detected)


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError):
        ChannelModel(distance_km=-1)
    with pytest.raises(ConfigError):
        ChannelModel(misalignment=1.5)
    with pytest.raises(ConfigError):
        SourceConfig(mu_signal=0)
    with pytest.raises(ConfigError):
        SourceConfig(decoy=True, mu_decoy=0.9, mu_signal=0.5)
    with pytest.raises(ConfigError):
        EveConfig(Eve.INTERCEPT_RESEND, 2.0)
    with pytest.raises(ConfigError):
        transmit(0, fibre(1))
