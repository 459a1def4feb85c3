"""Composable finite-key length of decoy-state BB84 (Lim, Curty, Walenta, Xu, Zbinden,
"Concise security bounds for practical decoy-state QKD", PRA 89, 022307, 2014).

The protocol: Alice picks the key basis X with probability ``p_x`` and one of three
intensities ``mu1 > mu2 + mu3``, ``mu2 > mu3 >= 0`` with probabilities ``p_k``; Bob
measures in X with probability ``p_x`` too. The key is made of every X-basis detection
(all intensities); every Z-basis detection is disclosed to bound the phase errors.
From the observed counts, with ``delta(n) = sqrt(n/2 · ln(21/eps_sec))`` (Hoeffding):

- ``n±_{X,k} = e^k / p_k · (n_{X,k} ± delta(n_X))``, ``m±_{Z,k} = e^k / p_k · (m_{Z,k} ± delta(m_Z))``
- ``tau_n = Σ_k p_k e^-k k^n / n!``
- vacuum events (eq. 2): ``s_{X,0} >= tau_0 (mu2 n-_{X,mu3} - mu3 n+_{X,mu2}) / (mu2 - mu3)``
- single photons (eq. 3): ``s_{X,1} >= tau_1 mu1 [n-_{X,mu2} - n+_{X,mu3}
  - (mu2² - mu3²)/mu1² (n+_{X,mu1} - s_{X,0}/tau_0)] / [mu1 (mu2 - mu3) - mu2² + mu3²]``
- single-photon errors in Z (eq. 4): ``v_{Z,1} <= tau_1 (m+_{Z,mu2} - m-_{Z,mu3}) / (mu2 - mu3)``
- phase error rate of the X single photons (eq. 5):
  ``phi_X <= v_{Z,1}/s_{Z,1} + gamma(eps_sec, v_{Z,1}/s_{Z,1}, s_{Z,1}, s_{X,1})`` with
  ``gamma(a, b, c, d) = sqrt((c+d)(1-b) b / (c d ln 2) · log2((c+d) / (c d (1-b) b) · 21² / a²))``;
  ``gamma`` approximates a hypergeometric tail and undershoots it when errors are few,
  so :func:`phase_error_bound` also inverts the exact tail and keeps the larger bound
- the key length (eq. 1):
  ``l = floor(s_{X,0} + s_{X,1} (1 - h(phi_X)) - lambda_EC - 6 log2(21/eps_sec) - log2(2/eps_cor))``.

The protocol is then ``eps_sec``-secret and ``eps_cor``-correct, so ``eps_sec + eps_cor``-secure
(composable); the 21 is the paper's split of ``eps_sec`` over the events it unions (each
Hoeffding bound, the Serfling bound in ``gamma``, the smoothing and the leftover hash).
``lambda_EC`` is everything public about the key beyond the above: here the
error-correction transcript *and* the 256-bit on-chain commitment (DESIGN.md, step 4).

Where the paper leaves a corner open we take the conservative side: a negative vacuum
bound counts as 0, the phase-error bound uses at least one single-photon error
(``gamma`` is undefined at b = 0) and is never below the exact hypergeometric bound, and
a bound at or above 1/2 gives no key. The paper's protocol has a fixed length; ours
computes the length from the data, as the paper's own experiment did (a fully
variable-length proof needs the newer treatment of Tupkary et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from qkd.bb84 import DecoyProtocol
from qkd.channel import ChannelModel
from qkd.errors import ConfigError, SessionAborted
from qkd.estimation import binary_entropy

EPS_SPLIT = 21  # the paper's number of terms eps_sec is divided into
COMMITMENT_BITS = 256


@dataclass(frozen=True)
class Counts:
    """Observed counts per intensity (``mu1, mu2, mu3``): detections with both in X and
    both in Z, and the errors among the Z detections (all disclosed)."""

    n_x: tuple[float, float, float]
    n_z: tuple[float, float, float]
    m_z: tuple[float, float, float]

    def __post_init__(self) -> None:
        if any(v < 0 for v in (*self.n_x, *self.n_z, *self.m_z)):
            raise ConfigError("counts must be non-negative")
        if any(m > n for m, n in zip(self.m_z, self.n_z, strict=True)):
            raise ConfigError("more Z errors than Z detections")


@dataclass(frozen=True)
class Estimates:
    """The bounds of eq. 2-5 for one set of counts."""

    s_x0: float
    s_x1: float
    s_z0: float
    s_z1: float
    v_z1: float
    phase_error: float  # phi_X upper bound used for keys: max(paper's, exact), capped at 1/2
    phase_error_lim: float  # the paper's eq. 5 alone, capped at 1/2

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def _hoeffding(total: float, eps_sec: float) -> float:
    return math.sqrt(total / 2 * math.log(EPS_SPLIT / eps_sec))


def _vacuum(protocol: DecoyProtocol, n: Sequence[float], eps_sec: float) -> float:
    _, mu2, mu3 = protocol.intensities
    _, p2, p3 = protocol.probabilities
    d = _hoeffding(sum(n), eps_sec)
    n_minus_3 = math.exp(mu3) / p3 * (n[2] - d)
    n_plus_2 = math.exp(mu2) / p2 * (n[1] + d)
    return max(protocol.tau(0) * (mu2 * n_minus_3 - mu3 * n_plus_2) / (mu2 - mu3), 0.0)


def _single(protocol: DecoyProtocol, n: Sequence[float], s0: float, eps_sec: float) -> float:
    mu1, mu2, mu3 = protocol.intensities
    p1, p2, p3 = protocol.probabilities
    d = _hoeffding(sum(n), eps_sec)
    n_plus_1 = math.exp(mu1) / p1 * (n[0] + d)
    n_minus_2 = math.exp(mu2) / p2 * (n[1] - d)
    n_plus_3 = math.exp(mu3) / p3 * (n[2] + d)
    numerator = n_minus_2 - n_plus_3 - (mu2**2 - mu3**2) / mu1**2 * (n_plus_1 - s0 / protocol.tau(0))
    denominator = mu1 * (mu2 - mu3) - mu2**2 + mu3**2
    return max(protocol.tau(1) * mu1 * numerator / denominator, 0.0)


def _single_errors(protocol: DecoyProtocol, m: Sequence[float], eps_sec: float) -> float:
    """Eq. 4: upper bound on the errors of single photons among the counted events."""
    _, mu2, mu3 = protocol.intensities
    _, p2, p3 = protocol.probabilities
    d = _hoeffding(sum(m), eps_sec)
    m_plus_2 = math.exp(mu2) / p2 * (m[1] + d)
    m_minus_3 = math.exp(mu3) / p3 * (m[2] - d)
    return protocol.tau(1) * (m_plus_2 - m_minus_3) / (mu2 - mu3)


def gamma(a: float, b: float, c: float, d: float) -> float:
    """The Serfling-type deviation of eq. 5 between the Z and X single-photon error rates."""
    inner = (c + d) / (c * d * (1 - b) * b) * EPS_SPLIT**2 / a**2
    # Below 1 the log (only reached for eps near 1, as in the N -> inf limit) is 0.
    return math.sqrt((c + d) * (1 - b) * b / (c * d * math.log(2)) * max(math.log2(inner), 0.0))


def estimate(protocol: DecoyProtocol, counts: Counts, eps_sec: float, exact: bool = True) -> Estimates:
    """Bounds on the vacuum and single-photon detections and the phase error rate
    (``exact=False`` skips the exact hypergeometric tail: for planning, never for keys).

    Raises:
        ConfigError: ``eps_sec`` outside (0, 1).
    """
    if not 0 < eps_sec < 1:
        raise ConfigError("eps_sec must be in (0, 1)")
    s_x0 = _vacuum(protocol, counts.n_x, eps_sec)
    s_x1 = _single(protocol, counts.n_x, s_x0, eps_sec)
    s_z0 = _vacuum(protocol, counts.n_z, eps_sec)
    s_z1 = _single(protocol, counts.n_z, s_z0, eps_sec)
    v_z1 = _single_errors(protocol, counts.m_z, eps_sec)
    return Estimates(
        s_x0,
        s_x1,
        s_z0,
        s_z1,
        v_z1,
        phase_error_bound(s_z1, s_x1, v_z1, eps_sec, exact=exact),
        phase_error_bound(s_z1, s_x1, v_z1, eps_sec, exact=False),
    )


def phase_error_bound(s_z1: float, s_x1: float, v_z1: float, eps_sec: float, exact: bool = True) -> float:
    """Upper bound on the X single-photon phase error rate (eq. 5), never below the
    paper's and never merely approximate.

    Lim's ``gamma`` comes from an approximation of the hypergeometric tail (their
    Appendix B); with few errors it undershoots the true tail by orders of magnitude.
    So we also invert the exact tail: of ``N = c + d`` single-photon events, the ``c`` in
    Z are a random sample; ``K_max(k)`` is the largest total error count for which
    seeing at most ``k`` errors in the sample still has probability above
    ``eps_sec/21``; the X events then hold at most ``K_max(k) - k`` errors (``K_max(k) - k``
    grows with ``k``, so the bound holds for any ``k`` at or above the true count).
    ``c, d`` are the lower bounds rounded down and ``k`` the upper bound rounded up.
    The larger of the two bounds is used (``exact=False``: the paper's alone), capped
    at 1/2."""
    if s_z1 < 1 or s_x1 < 1:
        return 0.5
    # At least one error: gamma needs b > 0, and more errors only raise the bound.
    b = max(v_z1, 1.0) / s_z1
    if b >= 0.5:
        return 0.5
    lim = b + gamma(eps_sec, b, s_z1, s_x1)
    if not exact:
        return min(lim, 0.5)
    c, d, k = math.floor(s_z1), math.floor(s_x1), math.ceil(max(v_z1, 1.0))
    return min(max(lim, _exact_rest_errors(c, d, k, eps_sec / EPS_SPLIT) / d), 0.5)


def _exact_rest_errors(c: int, d: int, k: int, eps: float) -> int:
    """``K_max(k) - k`` by bisection on the hypergeometric CDF (monotone in ``K``)."""
    from scipy.stats import hypergeom

    lo, hi = k, k + d  # P(X <= k | K = lo) is 1 > eps; find the last K keeping it > eps
    if hypergeom.cdf(k, c + d, hi, c) > eps:
        return d
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if hypergeom.cdf(k, c + d, mid, c) > eps else (lo, mid)
    return lo - k


@dataclass(frozen=True)
class KeyLength:
    """Eq. 1 term by term. ``public_bits`` is lambda_EC: every public bit about the key."""

    estimates: Estimates
    public_bits: float
    eps_sec: float
    eps_cor: float
    verification_bits: float  # what the correctness check costs: at least log2(2/eps_cor)
    paper: bool = False  # True: the paper's phase-error bound alone (for comparison)

    @property
    def secrecy_bits(self) -> float:
        return 6 * math.log2(EPS_SPLIT / self.eps_sec)

    @property
    def phase_error(self) -> float:
        return self.estimates.phase_error_lim if self.paper else self.estimates.phase_error

    @property
    def phase_error_bits(self) -> float:
        phi = self.phase_error
        return self.estimates.s_x1 * binary_entropy(phi) if phi < 0.5 else self.estimates.s_x1

    @property
    def bits(self) -> int:
        """The secure length (may be zero or negative: then no key)."""
        raw = (
            self.estimates.s_x0
            + self.estimates.s_x1
            - self.phase_error_bits
            - self.public_bits
            - self.secrecy_bits
            - max(self.verification_bits, math.log2(2 / self.eps_cor))
        )
        return math.floor(raw)

    def require_positive(self) -> int:
        """The length, or :class:`SessionAborted` (``key_length_not_positive``)."""
        if self.bits <= 0:
            raise SessionAborted("key_length_not_positive", f"the bound leaves {self.bits} bits: {self.terms()}")
        return self.bits

    def terms(self) -> dict[str, float | int]:
        return {
            **self.estimates.to_json(),
            "phase_error_bits": round(self.phase_error_bits, 1),
            "public_bits": round(self.public_bits, 1),
            "secrecy_bits": round(self.secrecy_bits, 1),
            "verification_bits": round(max(self.verification_bits, math.log2(2 / self.eps_cor)), 1),
            "final_bits": self.bits,
        }


def lim_key_length(
    protocol: DecoyProtocol, counts: Counts, public_bits: float, eps_sec: float, eps_cor: float
) -> KeyLength:
    """The paper's length for ``counts`` when ``public_bits`` leaked in reconciliation
    (its eq. 5 as written; sessions use the stricter :func:`phase_error_bound`).

    Raises:
        ConfigError: an epsilon outside (0, 1).
    """
    if not 0 < eps_cor < 1:
        raise ConfigError("eps_cor must be in (0, 1)")
    estimates = estimate(protocol, counts, eps_sec, exact=False)
    return KeyLength(estimates, public_bits, eps_sec, eps_cor, math.log2(2 / eps_cor), True)


# --- Expected counts: sizing sessions and drawing the bound against distance ---------


def expected_counts(channel: ChannelModel, protocol: DecoyProtocol, pulses: float) -> tuple[Counts, float]:
    """Mean counts of ``pulses`` pulses through ``channel`` (no Eve), and the mean X-basis
    error rate (what error correction must fix)."""
    n_x, n_z, m_z = [], [], []
    errors_x = 0.0
    px, pz = protocol.p_x, 1 - protocol.p_x
    for mu, p in zip(protocol.intensities, protocol.probabilities, strict=True):
        gain = channel.detection_prob(mu)
        err = channel.expected_qber(mu)
        n_x.append(pulses * p * px * px * gain)
        n_z.append(pulses * p * pz * pz * gain)
        m_z.append(pulses * p * pz * pz * gain * err)
        errors_x += pulses * p * px * px * gain * err
    total_x = sum(n_x)
    return Counts(tuple(n_x), tuple(n_z), tuple(m_z)), errors_x / total_x if total_x else 0.5  # type: ignore[arg-type]


def expected_key_length(
    channel: ChannelModel,
    protocol: DecoyProtocol,
    pulses: float,
    *,
    efficiency: float = 1.15,
    extra_public_bits: float = COMMITMENT_BITS,
    eps_sec: float = 1e-10,
    eps_cor: float = 1e-15,
) -> int:
    """The key length of a session whose counts are exactly their means, with error
    correction at ``efficiency`` (leak ``f · n_X · h(E_X)``) and ``extra_public_bits``
    (the on-chain commitment) public."""
    counts, e_x = expected_counts(channel, protocol, pulses)
    leak = efficiency * sum(counts.n_x) * binary_entropy(e_x) + extra_public_bits
    return lim_key_length(protocol, counts, leak, eps_sec, eps_cor).bits  # the paper's bound: a plan


def asymptotic_rate(channel: ChannelModel, protocol: DecoyProtocol, efficiency: float = 1.15) -> float:
    """Bits per pulse of the same bound as N grows without limit (fluctuations vanish)."""
    pulses = 1e18
    counts, e_x = expected_counts(channel, protocol, pulses)
    eps = 1 - 1e-12  # ln(21/eps) stays finite: the deviations vanish next to 1e18
    s_x0 = _vacuum(protocol, counts.n_x, eps)
    s_x1 = _single(protocol, counts.n_x, s_x0, eps)
    s_z1 = _single(protocol, counts.n_z, _vacuum(protocol, counts.n_z, eps), eps)
    v_z1 = _single_errors(protocol, counts.m_z, eps)
    b = v_z1 / s_z1 if s_z1 > 0 else 0.5
    if s_x1 <= 0 or b >= 0.5:
        return 0.0
    rate = s_x0 + s_x1 * (1 - binary_entropy(max(b, 0.0))) - efficiency * sum(counts.n_x) * binary_entropy(e_x)
    return max(rate / pulses, 0.0)


def infinite_decoy_rate(channel: ChannelModel, protocol: DecoyProtocol, efficiency: float = 1.15) -> float:
    """Bits per pulse of the same protocol with the vacuum and single-photon yields and
    the single-photon error known exactly (infinitely many decoys, N -> inf): what any
    decoy bound can at best approach."""
    y0 = 1 - (1 - channel.dark_count_prob) ** 2
    y1 = 1 - (1 - y0) * (1 - channel.transmittance)
    e1 = (y0 / 2 + channel.misalignment * (y1 - y0)) / y1
    rate = 0.0
    for mu, p in zip(protocol.intensities, protocol.probabilities, strict=True):
        rate += p * math.exp(-mu) * (y0 + mu * y1 * (1 - binary_entropy(e1)))
        rate -= p * efficiency * channel.detection_prob(mu) * binary_entropy(channel.expected_qber(mu))
    return max(rate * protocol.p_x**2, 0.0)


def optimize_protocol(
    channel: ChannelModel,
    pulses: float,
    *,
    efficiency: float = 1.15,
    eps_sec: float = 1e-10,
    eps_cor: float = 1e-15,
) -> tuple[DecoyProtocol, int]:
    """The protocol settings (grid search over ``mu1, mu2, p_mu1, p_mu2, p_x``, vacuum third
    intensity) that maximise the expected key length of ``pulses`` pulses."""
    best: tuple[DecoyProtocol, int] = (DecoyProtocol(), -(10**18))
    for mu1 in (0.4, 0.5, 0.6, 0.7, 0.8):
        for mu2 in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35):
            if mu1 <= mu2:
                continue
            for p1 in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                for p2_share in (0.4, 0.55, 0.7, 0.85):
                    p2 = (1 - p1) * p2_share
                    for p_x in (0.5, 0.6, 0.7, 0.8, 0.9):
                        protocol = DecoyProtocol((mu1, mu2, 0.0), (p1, p2, 1 - p1 - p2), p_x)
                        length = expected_key_length(
                            channel, protocol, pulses, efficiency=efficiency, eps_sec=eps_sec, eps_cor=eps_cor
                        )
                        if length > best[1]:
                            best = (protocol, length)
    return best


def pulses_for(
    channel: ChannelModel,
    target_bits: int,
    protocol: DecoyProtocol,
    *,
    efficiency: float = 1.15,
    eps_sec: float = 1e-10,
    eps_cor: float = 1e-15,
    max_pulses: float = 1e12,
) -> int:
    """The fewest pulses (to 1 %) whose expected key length reaches ``target_bits``.

    Raises:
        ConfigError: not reachable below ``max_pulses``.
    """

    def length(n: float) -> int:
        return expected_key_length(channel, protocol, n, efficiency=efficiency, eps_sec=eps_sec, eps_cor=eps_cor)

    if length(max_pulses) < target_bits:
        raise ConfigError(
            f"{target_bits} bits are out of reach below {max_pulses:.0e} pulses over {channel.distance_km} km"
        )
    lo, hi = 1e3, max_pulses
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if length(mid) < target_bits else (lo, mid)
    return math.ceil(hi)
