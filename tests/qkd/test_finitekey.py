"""The finite-key length against Lim et al. 2014, computed independently here.

The reference below is written from the paper's equations (1)-(5) afresh, in a
different shape from ``qkd.finitekey`` (one flat function, exact fractions for the
linear parts), so that a slip in either shows up as a disagreement.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd.bb84 import DecoyProtocol
from qkd.channel import ChannelModel, fibre
from qkd.errors import ConfigError, SessionAborted
from qkd.finitekey import (
    Counts,
    asymptotic_rate,
    estimate,
    expected_counts,
    expected_key_length,
    infinite_decoy_rate,
    lim_key_length,
    phase_error_bound,
    pulses_for,
)


def _h(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def lim_reference(
    mus: tuple[float, float, float],
    ps: tuple[float, float, float],
    n_x: tuple[float, float, float],
    n_z: tuple[float, float, float],
    m_z: tuple[float, float, float],
    lambda_ec: float,
    eps_sec: float,
    eps_cor: float,
) -> float:
    """Eq. (1)-(5) of Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014); the
    real-valued length before the floor (None-like -inf when no single photons)."""
    a, b, c = (Fraction(m).limit_denominator(10**9) for m in mus)
    ln = math.log(21 / eps_sec)
    tau0 = sum(p * math.exp(-m) for m, p in zip(mus, ps, strict=True))
    tau1 = sum(p * math.exp(-m) * m for m, p in zip(mus, ps, strict=True))

    def plus_minus(counts: tuple[float, float, float], k: int, sign: int) -> float:
        return math.exp(mus[k]) / ps[k] * (counts[k] + sign * math.sqrt(sum(counts) / 2 * ln))

    def s0(counts: tuple[float, float, float]) -> float:
        value = tau0 * (float(b) * plus_minus(counts, 2, -1) - float(c) * plus_minus(counts, 1, +1)) / float(b - c)
        return max(value, 0.0)  # a count cannot be negative

    def s1(counts: tuple[float, float, float]) -> float:
        denominator = float(a * (b - c) - b * b + c * c)
        bracket = (
            plus_minus(counts, 1, -1)
            - plus_minus(counts, 2, +1)
            - float((b * b - c * c) / (a * a)) * (plus_minus(counts, 0, +1) - s0(counts) / tau0)
        )
        return max(tau1 * float(a) * bracket / denominator, 0.0)

    sx0, sx1, sz1 = s0(n_x), s1(n_x), s1(n_z)
    if sx1 < 1 or sz1 < 1:
        return -math.inf
    mz_plus_2 = math.exp(mus[1]) / ps[1] * (m_z[1] + math.sqrt(sum(m_z) / 2 * ln))
    mz_minus_3 = math.exp(mus[2]) / ps[2] * (m_z[2] - math.sqrt(sum(m_z) / 2 * ln))
    vz1 = tau1 * (mz_plus_2 - mz_minus_3) / float(b - c)
    ratio = max(vz1, 1.0) / sz1  # the same conservative floor of one error as the module
    phi = 0.5  # no bound below 1/2: nothing from single photons
    if ratio < 0.5:
        g = math.sqrt(
            (sz1 + sx1)
            * (1 - ratio)
            * ratio
            / (sz1 * sx1 * math.log(2))
            * math.log2((sz1 + sx1) / (sz1 * sx1 * (1 - ratio) * ratio) * 21**2 / eps_sec**2)
        )
        phi = min(ratio + g, 0.5)
    return sx0 + sx1 * (1 - _h(phi)) - lambda_ec - 6 * math.log2(21 / eps_sec) - math.log2(2 / eps_cor)


protocols = st.builds(
    lambda mu1, r2, r3, p1, p2, px: DecoyProtocol(
        (mu1, mu1 * r2, mu1 * r2 * r3), (p1, p2 * (1 - p1), (1 - p2) * (1 - p1)), px
    ),
    st.floats(0.2, 0.9),
    st.floats(0.1, 0.45),
    st.sampled_from([0.0, 0.01, 0.1]),
    st.floats(0.2, 0.9),
    st.floats(0.2, 0.8),
    st.floats(0.3, 0.95),
)


@settings(max_examples=150, deadline=None)
@given(protocol=protocols, distance=st.floats(0, 120), log_n=st.floats(6, 12), f=st.floats(1.0, 1.5))
def test_matches_the_independent_reference(protocol: DecoyProtocol, distance: float, log_n: float, f: float) -> None:
    counts, e_x = expected_counts(fibre(distance), protocol, 10**log_n)
    counts = Counts(*(tuple(float(round(v)) for v in part) for part in (counts.n_x, counts.n_z, counts.m_z)))  # type: ignore[arg-type]
    leak = f * sum(counts.n_x) * _h(e_x) + 256
    ours = lim_key_length(protocol, counts, leak, 1e-10, 1e-15)
    ref = lim_reference(
        protocol.intensities, protocol.probabilities, counts.n_x, counts.n_z, counts.m_z, leak, 1e-10, 1e-15
    )
    if ref == -math.inf or ref < 1:
        assert ours.bits <= 0
    else:
        assert abs(ours.bits - math.floor(ref)) <= 1  # float rounding at an integer edge


def test_hand_computed_case() -> None:
    """A case small enough to follow by hand (numbers from the reference above, which
    is written straight from the paper's equations)."""
    protocol = DecoyProtocol((0.5, 0.1, 0.0), (0.5, 0.3, 0.2), 0.5)
    counts = Counts((1e6, 1.5e5, 2e4), (1e6, 1.5e5, 2e4), (1.2e4, 2.5e3, 1e4))
    ours = lim_key_length(protocol, counts, 1e5, 1e-10, 1e-15)
    ref = lim_reference(
        protocol.intensities, protocol.probabilities, counts.n_x, counts.n_z, counts.m_z, 1e5, 1e-10, 1e-15
    )
    assert ours.bits == math.floor(ref)
    est = ours.estimates
    # The vacuum bound uses the weakest intensity only: tau0 · n-_{X,mu3} when mu3 = 0.
    tau0 = 0.5 * math.exp(-0.5) + 0.3 * math.exp(-0.1) + 0.2
    assert est.s_x0 == pytest.approx(tau0 * (2e4 - math.sqrt(1.17e6 / 2 * math.log(21e10))) / 0.2, rel=1e-12)
    assert 0 < est.phase_error < 0.5
    assert ours.terms()["final_bits"] == ours.bits


def test_lim_parameter_set_behaves_as_the_paper_shows() -> None:
    """The paper's Fig. 1 parameters (eta_Bob 0.1, p_dc 6e-7, e_mis 0.5 %, 0.2 dB/km,
    f_EC 1.16, eps_sec 1e-10, eps_cor 1e-15; afterpulsing left out: our channel has
    none): the rate grows with N towards the N -> inf limit, and a larger N reaches
    further."""
    from qkd.finitekey import optimize_protocol

    def channel(km: float) -> ChannelModel:
        return ChannelModel(km, 0.2, 0.0, 0.1, 3e-7, 0.005)  # two detectors of 3e-7 each

    rates = [max(optimize_protocol(channel(20), n, efficiency=1.16)[1], 0) / n for n in (1e7, 1e9, 1e11)]
    limit = asymptotic_rate(channel(20), optimize_protocol(channel(20), 1e11, efficiency=1.16)[0], 1.16)
    assert 0 < rates[0] < rates[1] < rates[2] <= limit
    # Reach grows with N: no key at 100 km from 10^7 pulses, a key from 10^9; at 170 km only 10^11.
    assert optimize_protocol(channel(100), 1e7, efficiency=1.16)[1] <= 0
    assert optimize_protocol(channel(100), 1e9, efficiency=1.16)[1] > 0
    assert optimize_protocol(channel(170), 1e9, efficiency=1.16)[1] <= 0
    assert optimize_protocol(channel(170), 1e11, efficiency=1.16)[1] > 0


@pytest.mark.parametrize("distance", [0.0, 10.0, 50.0])
def test_converges_to_the_asymptotic_rate(distance: float) -> None:
    protocol = DecoyProtocol((0.5, 0.1, 0.0), (0.8, 0.15, 0.05), 0.9)
    channel = fibre(distance)
    limit = asymptotic_rate(channel, protocol)
    rates = [max(expected_key_length(channel, protocol, n), 0) / n for n in (1e8, 1e10, 1e12, 1e14)]
    assert all(r2 >= r1 for r1, r2 in itertools.pairwise(rates))
    assert rates[-1] == pytest.approx(limit, rel=0.02)
    assert rates[-1] <= limit


@pytest.mark.parametrize("distance", [0.0, 20.0, 60.0])
def test_never_above_the_infinite_decoy_rate(distance: float) -> None:
    """Exact single-photon yield and error (infinitely many decoys) for the same
    protocol: the decoy bounds can only lose."""
    protocol = DecoyProtocol((0.5, 0.1, 0.0), (0.8, 0.15, 0.05), 0.9)
    ch = fibre(distance)
    y0 = 1 - (1 - ch.dark_count_prob) ** 2
    y1 = 1 - (1 - y0) * (1 - ch.transmittance)
    e1 = (y0 / 2 + ch.misalignment * (y1 - y0)) / y1
    ideal = 0.0
    for mu, p in zip(protocol.intensities, protocol.probabilities, strict=True):
        ideal += p * (math.exp(-mu) * y0 + mu * math.exp(-mu) * y1 * (1 - _h(e1)))
        ideal -= p * 1.15 * ch.detection_prob(mu) * _h(ch.expected_qber(mu))
    ideal *= protocol.p_x**2
    assert asymptotic_rate(ch, protocol) <= ideal
    assert infinite_decoy_rate(ch, protocol, 1.15) == pytest.approx(ideal, rel=1e-12)


def test_more_public_bits_or_smaller_eps_give_less() -> None:
    protocol = DecoyProtocol()
    counts, _ = expected_counts(fibre(10), protocol, 2e7)
    base = lim_key_length(protocol, counts, 5000, 1e-10, 1e-15).bits
    assert lim_key_length(protocol, counts, 6000, 1e-10, 1e-15).bits == base - 1000
    assert lim_key_length(protocol, counts, 5000, 1e-14, 1e-15).bits < base
    assert lim_key_length(protocol, counts, 5000, 1e-10, 1e-30).bits < base


def test_sizing_reaches_the_target() -> None:
    protocol = DecoyProtocol()
    n = pulses_for(fibre(10), 256, protocol)
    assert expected_key_length(fibre(10), protocol, n) >= 256
    assert expected_key_length(fibre(10), protocol, n * 0.9) < 256
    with pytest.raises(ConfigError):
        pulses_for(fibre(400), 256, protocol)


def test_errors() -> None:
    with pytest.raises(ConfigError):
        DecoyProtocol((0.5, 0.3, 0.3), (0.5, 0.3, 0.2), 0.5)  # mu1 > mu2 + mu3 fails
    with pytest.raises(ConfigError):
        DecoyProtocol((0.5, 0.1, 0.0), (0.5, 0.3, 0.3), 0.5)
    with pytest.raises(ConfigError):
        Counts((1, 1, 1), (1, 1, 1), (2, 0, 0))
    with pytest.raises(ConfigError):
        estimate(DecoyProtocol(), Counts((1, 1, 1), (1, 1, 1), (0, 0, 0)), 0.0)
    nothing = lim_key_length(DecoyProtocol(), Counts((10, 5, 1), (10, 5, 1), (1, 1, 0)), 0, 1e-10, 1e-15)
    with pytest.raises(SessionAborted):
        nothing.require_positive()
    assert np.isfinite(nothing.bits)


@pytest.mark.parametrize(("c", "d", "k"), [(4440, 10000, 1), (4440, 10000, 3), (4440, 10000, 10), (4640, 13978, 433)])
def test_phase_error_bound_is_rigorous_where_the_papers_gamma_is_not(c: int, d: int, k: int) -> None:
    """Of c + d single photons the c in Z are a random sample. One more X error than
    the bound allows must make seeing at most k errors in Z rarer than eps_sec/21, by
    the exact hypergeometric tail (computed here, not through the module)."""
    from scipy.stats import hypergeom

    eps = 1e-10
    bound = phase_error_bound(c, d, k, eps)
    assert bound >= phase_error_bound(c, d, k, eps, exact=False)  # never below the paper's
    above = k + round(bound * d) + 1  # total errors with one X error too many
    assert hypergeom.cdf(k, c + d, above, c) <= eps / 21
    if k <= 10:
        # The paper's gamma (Appendix B approximates this tail) undershoots it here.
        lim = phase_error_bound(c, d, k, eps, exact=False)
        assert hypergeom.cdf(k, c + d, k + round(lim * d) + 1, c) > eps / 21
