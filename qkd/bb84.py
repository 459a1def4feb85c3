"""Photon-level BB84, vectorized with numpy: source, channel, eavesdropper, detection.

Everything for N pulses is drawn as arrays; no Python loop runs per photon. The
same seed gives the same session.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from qkd.channel import ChannelModel
from qkd.errors import ConfigError


class Eve(Enum):
    NONE = "none"
    INTERCEPT_RESEND = "intercept-resend"
    PNS = "pns"


@dataclass(frozen=True)
class SourceConfig:
    """Weak coherent pulses. With ``decoy`` the source also sends decoy and vacuum
    pulses (the standard vacuum + weak decoy method) with the given probabilities."""

    mu_signal: float = 0.5
    decoy: bool = False
    mu_decoy: float = 0.1
    mu_vacuum: float = 0.0
    p_decoy: float = 0.15
    p_vacuum: float = 0.05

    def __post_init__(self) -> None:
        if self.mu_signal <= 0:
            raise ConfigError("mu_signal must be positive")
        if self.decoy and not 0 <= self.mu_vacuum < self.mu_decoy < self.mu_signal:
            raise ConfigError("need mu_vacuum < mu_decoy < mu_signal")
        if self.decoy and not (self.p_decoy > 0 and self.p_vacuum >= 0 and self.p_decoy + self.p_vacuum < 1):
            raise ConfigError("decoy probabilities must be positive and leave room for signals")


SIGNAL, DECOY, VACUUM = 0, 1, 2


@dataclass(frozen=True)
class EveConfig:
    kind: Eve = Eve.NONE
    fraction: float = 1.0  # share of pulses attacked

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ConfigError(f"eve fraction must be in [0, 1], got {self.fraction}")


@dataclass(frozen=True)
class Transmission:
    """What each side holds after the quantum phase (one entry per pulse)."""

    alice_bits: np.ndarray  # uint8
    alice_bases: np.ndarray  # uint8, 0 = Z, 1 = X
    intensity: np.ndarray  # uint8: SIGNAL / DECOY / VACUUM
    detected: np.ndarray  # bool: Bob registered a click
    bob_bases: np.ndarray  # uint8
    bob_bits: np.ndarray  # uint8 (meaningless where not detected)
    photons: np.ndarray  # photon number emitted per pulse

    @property
    def pulses(self) -> int:
        return int(self.alice_bits.size)

    @property
    def detections(self) -> int:
        return int(self.detected.sum())


def transmit(
    pulses: int,
    channel: ChannelModel,
    source: SourceConfig | None = None,
    eve: EveConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Transmission:
    """Send ``pulses`` BB84 pulses from Alice to Bob.

    Raises:
        ConfigError: ``pulses`` is not positive.
    """
    if pulses <= 0:
        raise ConfigError("pulses must be positive")
    source = source or SourceConfig()
    eve = eve or EveConfig()
    rng = rng or np.random.default_rng()
    n = pulses

    # Binomial and Poisson draws on millions of pulses dominate the run time, so the
    # sampling works with uniforms: bits from random bytes, photon numbers by inverse
    # CDF, and "at least one photon survives" (all that detection needs) as
    # u < 1 - (1 - eta)^photons.
    alice_bits = _random_bits(rng, n)
    alice_bases = _random_bits(rng, n)
    if source.decoy:
        weights = np.array([1 - source.p_decoy - source.p_vacuum, source.p_decoy, source.p_vacuum])
        intensity = _inverse_cdf(np.cumsum(weights)[:-1], rng.random(n))
        levels: tuple[float, ...] = (source.mu_signal, source.mu_decoy, source.mu_vacuum)
    else:
        intensity = np.zeros(n, dtype=np.uint8)
        levels = (source.mu_signal,)
    photons = np.zeros(n, dtype=np.uint8)
    u = rng.random(n)
    for level, mu in enumerate(levels):
        if mu > 0:
            sel = intensity == level
            photons[sel] = _inverse_cdf(_poisson_cdf(mu), u[sel])

    eta = channel.transmittance
    enc_bases = alice_bases
    enc_bits = alice_bits
    signal_click = rng.random(n) < _survival(eta, photons)
    attacked = rng.random(n) < eve.fraction if eve.kind is not Eve.NONE else np.zeros(n, dtype=bool)

    if eve.kind is Eve.INTERCEPT_RESEND:
        # Eve measures every non-empty attacked pulse at Alice's door in a random basis
        # and resends one photon prepared in her basis with her result.
        hit = attacked & (photons > 0)
        eve_bases = _random_bits(rng, n)
        eve_bits = np.where(eve_bases == alice_bases, alice_bits, _random_bits(rng, n))
        enc_bases = np.where(hit, eve_bases, enc_bases)
        enc_bits = np.where(hit, eve_bits, enc_bits)
        signal_click = np.where(hit, rng.random(n) < eta, signal_click)
    elif eve.kind is Eve.PNS:
        # Photon-number splitting: Eve blocks attacked single-photon pulses and keeps
        # one photon of each multi-photon pulse, forwarding the rest over a lossless
        # line (only Bob's detector efficiency remains). No errors, only changed yields.
        single = attacked & (photons == 1)
        multi = attacked & (photons >= 2)
        det = channel.detector_efficiency
        forwarded = rng.random(n) < _survival(det, np.maximum(photons, 1) - 1)
        signal_click = np.where(single, False, np.where(multi, forwarded, signal_click))

    bob_bases = _random_bits(rng, n)
    same = bob_bases == enc_bases
    # Outcome of a signal click: the encoded bit (flipped by misalignment) in the
    # matching basis, a fair coin otherwise.
    flip = (rng.random(n) < channel.misalignment).astype(np.uint8)
    signal_bit = np.where(same, enc_bits ^ flip, _random_bits(rng, n))
    # Two detectors (bit 0 and bit 1), each with its own dark counts.
    dark0 = _rare(rng, n, channel.dark_count_prob)
    dark1 = _rare(rng, n, channel.dark_count_prob)
    click0 = dark0 | (signal_click & (signal_bit == 0))
    click1 = dark1 | (signal_click & (signal_bit == 1))
    detected = click0 | click1
    # Double clicks are kept and given a random bit (squashing model).
    double = click0 & click1
    bob_bits = np.where(double, _random_bits(rng, n), click1.astype(np.uint8)).astype(np.uint8)
    return Transmission(alice_bits, alice_bases, intensity, detected, bob_bases, bob_bits, photons)


def _random_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8))[:n]


def _poisson_cdf(mu: float) -> np.ndarray:
    """P(N <= k) for k = 0.. while it is distinguishable from 1 in float64."""
    k = np.arange(0, 64)
    cdf = np.cumsum(np.exp(-mu + k * np.log(mu) - np.cumsum(np.log(np.maximum(k, 1)))))
    return cdf[cdf < 1 - 1e-15]


def _inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The k with cdf[k-1] <= u < cdf[k]: one comparison pass per entry of a short cdf
    (much faster than a binary search per sample on millions of samples)."""
    out = np.zeros(u.size, dtype=np.uint8)
    for c in cdf:
        out += u >= c
    return out


def _survival(eta: float, photons: np.ndarray) -> np.ndarray:
    """P(at least one of ``photons`` survives a loss of transmittance ``eta``)."""
    table: np.ndarray = 1 - (1 - eta) ** np.arange(256)
    return np.asarray(table[photons])


def _rare(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """A boolean mask with each entry true with probability ``p`` (cheap for small p)."""
    mask = np.zeros(n, dtype=bool)
    if p > 0:
        mask[
            rng.choice(n, rng.binomial(n, p), replace=False) if p > 0.01 else rng.integers(0, n, rng.binomial(n, p))
        ] = True
    return mask
