"""Asymptotic secret key rates of the channel model (bits per pulse), for plots.

Decoy BB84 with infinitely many decoys (GLLP with exact single-photon parameters):
``R = 1/2 · [Q1 (1 - h(e1)) - f Q_mu h(E_mu)]`` with ``Y1 = 1 - (1 - Y0)(1 - eta)``,
``e1 = (Y0/2 + e_mis (Y1 - Y0)) / Y1``, ``Q1 = Y1 mu e^-mu``; the 1/2 is sifting.
The ideal single-photon bound is ``1/2 · Y1 (1 - 2 h(e1))`` at ``f = 1``.
"""

from __future__ import annotations

import math

from qkd.channel import ChannelModel
from qkd.estimation import binary_entropy


def _single_photon(channel: ChannelModel) -> tuple[float, float]:
    y0 = 1 - (1 - channel.dark_count_prob) ** 2
    y1 = 1 - (1 - y0) * (1 - channel.transmittance)
    e1 = (y0 / 2 + channel.misalignment * (y1 - y0)) / y1
    return y1, e1


def decoy_rate(channel: ChannelModel, mu: float, f: float = 1.1) -> float:
    """Asymptotic decoy-state key rate per pulse (0 when negative)."""
    y1, e1 = _single_photon(channel)
    q1 = y1 * mu * math.exp(-mu)
    gain = channel.detection_prob(mu)
    rate = 0.5 * (q1 * (1 - binary_entropy(e1)) - f * gain * binary_entropy(channel.expected_qber(mu)))
    return max(rate, 0.0)


def single_photon_bound(channel: ChannelModel) -> float:
    """BB84 with an ideal single-photon source and perfect error correction."""
    y1, e1 = _single_photon(channel)
    return max(0.5 * y1 * (1 - 2 * binary_entropy(e1)), 0.0)
