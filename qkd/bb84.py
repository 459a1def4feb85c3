"""BB84 with decoy states, simulated two ways that give the same distributions.

The source and the detection choices follow Lim et al. 2014 (:class:`DecoyProtocol`):
three intensities, each pulse's basis X (the key basis) with probability ``p_x`` at
Alice and at Bob. Eve may intercept and resend, or split photon numbers, on a share
of the pulses.

- :func:`transmit_pulses` draws every pulse (photon number, loss, detectors): the
  reference, linear in the number of pulses.
- :func:`transmit` draws only the pulses that click: per intensity, the number of
  pulses of each (photon number, attacked) class that give a signal click is one
  multinomial draw, dark-count-only clicks one binomial draw on the rest, and only
  the clicks get bits, bases and detector outcomes. Its cost is proportional to the
  clicks, so a 10^9-pulse session costs what its 3·10^7 clicks cost.

Both return :class:`Clicks`: what each side holds about the pulses that clicked (a
real Bob announces the time slots that clicked; Alice's data for the others never
matters). The same seed gives the same session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from qkd.channel import ChannelModel
from qkd.errors import ConfigError

X, Z = 0, 1  # bases: X is the key basis
MU1, MU2, MU3 = 0, 1, 2  # intensity labels: signal, decoy, weakest (vacuum by default)


@dataclass(frozen=True)
class DecoyProtocol:
    """Source and measurement settings: three intensities ``mu1 > mu2 + mu3``,
    ``mu2 > mu3 >= 0`` sent with probabilities ``p_k``, and the key basis X chosen
    with probability ``p_x`` by Alice and by Bob."""

    # Chosen by ``finitekey.optimize_protocol`` for ~10^7-pulse sessions over 10 km of
    # fibre: at that size the decoy statistics, not the signal count, limit the key.
    intensities: tuple[float, float, float] = (0.5, 0.2, 0.0)
    probabilities: tuple[float, float, float] = (0.3, 0.4, 0.3)
    p_x: float = 0.6

    def __post_init__(self) -> None:
        mu1, mu2, mu3 = self.intensities
        if not (mu3 >= 0 and mu2 > mu3 and mu1 > mu2 + mu3):
            raise ConfigError(f"intensities must satisfy mu1 > mu2 + mu3 and mu2 > mu3 >= 0, got {self.intensities}")
        if any(p <= 0 for p in self.probabilities) or not math.isclose(sum(self.probabilities), 1.0, abs_tol=1e-9):
            raise ConfigError(f"intensity probabilities must be positive and sum to 1, got {self.probabilities}")
        if not 0 < self.p_x < 1:
            raise ConfigError(f"p_x must be in (0, 1), got {self.p_x}")

    def tau(self, n: int) -> float:
        """Probability that Alice sends an ``n``-photon state."""
        return sum(
            p * math.exp(-k) * k**n / math.factorial(n)
            for k, p in zip(self.intensities, self.probabilities, strict=True)
        )

    def to_json(self) -> dict[str, object]:
        return {"intensities": list(self.intensities), "probabilities": list(self.probabilities), "p_x": self.p_x}


class Eve(Enum):
    NONE = "none"
    INTERCEPT_RESEND = "intercept-resend"
    PNS = "pns"


@dataclass(frozen=True)
class EveConfig:
    kind: Eve = Eve.NONE
    fraction: float = 1.0  # share of pulses attacked

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ConfigError(f"eve fraction must be in [0, 1], got {self.fraction}")

    @property
    def attacked_share(self) -> float:
        return 0.0 if self.kind is Eve.NONE else self.fraction


@dataclass(frozen=True)
class Clicks:
    """The pulses that gave at least one click, in time order (one entry per click)."""

    pulses: int
    sent: np.ndarray  # pulses sent per intensity (public after the quantum phase)
    intensity: np.ndarray  # uint8: MU1 / MU2 / MU3
    alice_bits: np.ndarray  # uint8
    alice_bases: np.ndarray  # uint8: X / Z
    bob_bases: np.ndarray  # uint8
    bob_bits: np.ndarray  # uint8 (double clicks get a random bit)
    photons: np.ndarray  # photon number Alice emitted (for diagnostics; nobody may use it)

    @property
    def detections(self) -> int:
        return int(self.intensity.size)


def _settle(
    pulses: int, protocol: DecoyProtocol | None, eve: EveConfig | None, rng: np.random.Generator | None
) -> tuple[DecoyProtocol, EveConfig, np.random.Generator]:
    """Check ``pulses`` and fill in the defaults of both simulators."""
    if pulses <= 0:
        raise ConfigError("pulses must be positive")
    return protocol or DecoyProtocol(), eve or EveConfig(), rng or np.random.default_rng()


def _poisson_pmf(mu: float) -> np.ndarray:
    """P(N = k) for k = 0.. while it matters in float64; the tail folded into the last."""
    if mu == 0:
        return np.array([1.0])
    k = np.arange(0, 64)
    pmf = np.exp(-mu + k * math.log(mu) - np.cumsum(np.log(np.maximum(k, 1))))
    last = int(np.flatnonzero(np.cumsum(pmf) < 1 - 1e-16)[-1]) + 2 if pmf[0] < 1 - 1e-16 else 1
    pmf = pmf[:last].copy()
    pmf[-1] += max(1 - pmf.sum(), 0.0)
    return np.asarray(pmf, dtype=np.float64)


def _signal_click_prob(photons: np.ndarray, attacked: bool, channel: ChannelModel, eve: Eve) -> np.ndarray:
    """P(a signal click | photon number, attacked) for every photon number."""
    eta = channel.transmittance
    clean: np.ndarray = 1 - (1 - eta) ** photons
    if not attacked or eve is Eve.NONE:
        return clean
    if eve is Eve.INTERCEPT_RESEND:
        # Eve measures every non-empty pulse and resends one photon through the channel.
        return np.where(photons >= 1, eta, 0.0)
    # PNS: single photons blocked; of n >= 2 she keeps one and forwards n - 1 losslessly.
    det = channel.detector_efficiency
    return np.where(photons >= 2, 1 - (1 - det) ** np.maximum(photons - 1, 0), 0.0)


def _random_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8))[:n]


def _bases(rng: np.random.Generator, n: int, p_x: float) -> np.ndarray:
    return (rng.random(n) >= p_x).astype(np.uint8)


def _outcome(
    rng: np.random.Generator,
    channel: ChannelModel,
    signal: np.ndarray,
    enc_bits: np.ndarray,
    enc_bases: np.ndarray,
    bob_bases: np.ndarray,
    dark0: np.ndarray,
    dark1: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Bob's detectors: (clicked, bit). A signal click gives the encoded bit, flipped by
    misalignment, in the matching basis and a fair coin otherwise; each detector adds its
    own dark counts; double clicks get a random bit (squashing)."""
    n = signal.size
    flip = (rng.random(n) < channel.misalignment).astype(np.uint8)
    signal_bit = np.where(bob_bases == enc_bases, enc_bits ^ flip, _random_bits(rng, n))
    click0 = dark0 | (signal & (signal_bit == 0))
    click1 = dark1 | (signal & (signal_bit == 1))
    double = click0 & click1
    bits = np.where(double, _random_bits(rng, n), click1.astype(np.uint8)).astype(np.uint8)
    return click0 | click1, bits


def _intercept(
    rng: np.random.Generator, hit: np.ndarray, alice_bits: np.ndarray, alice_bases: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Intercept-resend on the ``hit`` pulses: Eve measures in a random basis and resends."""
    n = hit.size
    eve_bases = _random_bits(rng, n)
    eve_bits = np.where(eve_bases == alice_bases, alice_bits, _random_bits(rng, n))
    return np.where(hit, eve_bits, alice_bits), np.where(hit, eve_bases, alice_bases)


def transmit(
    pulses: int,
    channel: ChannelModel,
    protocol: DecoyProtocol | None = None,
    eve: EveConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Clicks:
    """Send ``pulses`` pulses, drawing only the ones that click.

    Raises:
        ConfigError: ``pulses`` is not positive.
    """
    protocol, eve, rng = _settle(pulses, protocol, eve, rng)
    f = eve.attacked_share
    y0 = 1 - (1 - channel.dark_count_prob) ** 2
    sent = rng.multinomial(pulses, protocol.probabilities)
    parts: list[tuple[np.ndarray, ...]] = []
    for level, (mu, n_k) in enumerate(zip(protocol.intensities, sent, strict=True)):
        pmf = _poisson_pmf(mu)
        photons = np.arange(pmf.size)
        # Classes (photon number, attacked) with their signal-click probabilities.
        cls_photons = np.concatenate([photons, photons])
        cls_attacked = np.concatenate([np.zeros(pmf.size, bool), np.ones(pmf.size, bool)])
        cls_prob = np.concatenate([pmf * (1 - f), pmf * f])
        click = np.concatenate(
            [
                _signal_click_prob(photons, False, channel, eve.kind),
                _signal_click_prob(photons, True, channel, eve.kind),
            ]
        )
        hits = rng.multinomial(n_k, np.append(cls_prob * click, max(1 - float(np.sum(cls_prob * click)), 0.0)))
        signal_by_class = hits[:-1]
        n_signal = int(signal_by_class.sum())
        n_dark = int(rng.binomial(n_k - n_signal, y0))
        # Signal clicks: photon number and attack from their class; both detectors may
        # also fire a dark count.
        idx = np.repeat(np.arange(cls_prob.size), signal_by_class)
        s_photons, s_attacked = cls_photons[idx], cls_attacked[idx]
        s_dark0 = rng.random(n_signal) < channel.dark_count_prob
        s_dark1 = rng.random(n_signal) < channel.dark_count_prob
        # Dark-only clicks: the class given no signal click (diagnostics only), and which
        # detector(s) fired given at least one did.
        quiet = cls_prob * (1 - click)
        d_class = rng.choice(cls_prob.size, n_dark, p=quiet / quiet.sum()) if n_dark else np.zeros(0, np.int64)
        p = channel.dark_count_prob
        which = rng.choice(3, n_dark, p=[p * (1 - p) / y0, p * (1 - p) / y0, p * p / y0]) if n_dark else np.zeros(0)
        photons_all = np.concatenate([s_photons, cls_photons[d_class]])
        attacked_all = np.concatenate([s_attacked, np.zeros(n_dark, bool)])
        signal_all = np.concatenate([np.ones(n_signal, bool), np.zeros(n_dark, bool)])
        dark0 = np.concatenate([s_dark0, (which == 0) | (which == 2)])
        dark1 = np.concatenate([s_dark1, (which == 1) | (which == 2)])
        parts.append((np.full(photons_all.size, level, np.uint8), photons_all, attacked_all, signal_all, dark0, dark1))
    level_arr, photons_arr, attacked, signal, dark0, dark1 = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = rng.permutation(level_arr.size)  # clicks of all intensities interleave in time
    level_arr, photons_arr, attacked, signal, dark0, dark1 = (
        a[order] for a in (level_arr, photons_arr, attacked, signal, dark0, dark1)
    )
    c = level_arr.size
    alice_bits = _random_bits(rng, c)
    alice_bases = _bases(rng, c, protocol.p_x)
    bob_bases = _bases(rng, c, protocol.p_x)
    enc_bits, enc_bases = alice_bits, alice_bases
    if eve.kind is Eve.INTERCEPT_RESEND:
        enc_bits, enc_bases = _intercept(rng, attacked & (photons_arr > 0), alice_bits, alice_bases)
    clicked, bob_bits = _outcome(rng, channel, signal, enc_bits, enc_bases, bob_bases, dark0, dark1)
    assert bool(clicked.all())
    return Clicks(
        pulses,
        sent,
        level_arr,
        alice_bits,
        alice_bases,
        bob_bases,
        bob_bits,
        np.minimum(photons_arr, 255).astype(np.uint8),
    )


def transmit_pulses(
    pulses: int,
    channel: ChannelModel,
    protocol: DecoyProtocol | None = None,
    eve: EveConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Clicks:
    """Send ``pulses`` pulses, drawing every one of them (the reference model).

    Raises:
        ConfigError: ``pulses`` is not positive.
    """
    protocol, eve, rng = _settle(pulses, protocol, eve, rng)
    n = pulses
    alice_bits = _random_bits(rng, n)
    alice_bases = _bases(rng, n, protocol.p_x)
    cum = np.cumsum(protocol.probabilities)[:-1]
    intensity = np.searchsorted(cum, rng.random(n), side="right").astype(np.uint8)
    photons = np.zeros(n, dtype=np.int64)
    for level, mu in enumerate(protocol.intensities):
        sel = intensity == level
        photons[sel] = rng.poisson(mu, int(sel.sum()))
    attacked = rng.random(n) < eve.attacked_share
    survive = np.minimum(photons, 255)
    signal = rng.random(n) < np.where(
        attacked,
        _signal_click_prob(survive, True, channel, eve.kind),
        _signal_click_prob(survive, False, channel, eve.kind),
    )
    enc_bits, enc_bases = alice_bits, alice_bases
    if eve.kind is Eve.INTERCEPT_RESEND:
        enc_bits, enc_bases = _intercept(rng, attacked & (photons > 0), alice_bits, alice_bases)
    bob_bases = _bases(rng, n, protocol.p_x)
    dark0 = rng.random(n) < channel.dark_count_prob
    dark1 = rng.random(n) < channel.dark_count_prob
    clicked, bob_bits = _outcome(rng, channel, signal, enc_bits, enc_bases, bob_bases, dark0, dark1)
    sent = np.bincount(intensity, minlength=3)
    return Clicks(
        pulses,
        sent,
        intensity[clicked],
        alice_bits[clicked],
        alice_bases[clicked],
        bob_bases[clicked],
        bob_bits[clicked],
        np.minimum(photons[clicked], 255).astype(np.uint8),
    )
