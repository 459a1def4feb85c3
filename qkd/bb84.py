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

    alice_bits = rng.integers(0, 2, n, dtype=np.uint8)
    alice_bases = rng.integers(0, 2, n, dtype=np.uint8)
    if source.decoy:
        intensity = rng.choice(
            np.array([SIGNAL, DECOY, VACUUM], dtype=np.uint8),
            size=n,
            p=[1 - source.p_decoy - source.p_vacuum, source.p_decoy, source.p_vacuum],
        )
        mu = np.array([source.mu_signal, source.mu_decoy, source.mu_vacuum])[intensity]
    else:
        intensity = np.zeros(n, dtype=np.uint8)
        mu = np.full(n, source.mu_signal)
    photons = rng.poisson(mu)

    eta = channel.transmittance
    # The state that reaches Bob: basis and bit encoded, photon count arriving.
    enc_bases = alice_bases.copy()
    enc_bits = alice_bits.copy()
    arriving = rng.binomial(photons, eta)  # photons that survive channel and detector
    attacked = rng.random(n) < eve.fraction if eve.kind is not Eve.NONE else np.zeros(n, dtype=bool)

    if eve.kind is Eve.INTERCEPT_RESEND:
        # Eve measures every non-empty attacked pulse at Alice's door in a random basis
        # and resends one photon prepared in her basis with her result.
        hit = attacked & (photons > 0)
        eve_bases = rng.integers(0, 2, n, dtype=np.uint8)
        eve_bits = np.where(eve_bases == alice_bases, alice_bits, rng.integers(0, 2, n, dtype=np.uint8))
        enc_bases = np.where(hit, eve_bases, enc_bases)
        enc_bits = np.where(hit, eve_bits, enc_bits)
        arriving = np.where(hit, rng.binomial(1, eta, n), arriving)
    elif eve.kind is Eve.PNS:
        # Photon-number splitting: Eve blocks attacked single-photon pulses and keeps
        # one photon of each multi-photon pulse, forwarding the rest over a lossless
        # line (only Bob's detector efficiency remains). No errors, only changed yields.
        single = attacked & (photons == 1)
        multi = attacked & (photons >= 2)
        arriving = np.where(single, 0, arriving)
        forwarded = rng.binomial(np.maximum(photons - 1, 0), channel.detector_efficiency)
        arriving = np.where(multi, forwarded, arriving)

    signal_click = arriving > 0
    bob_bases = rng.integers(0, 2, n, dtype=np.uint8)
    same = bob_bases == enc_bases
    # Outcome of a signal click: the encoded bit (flipped by misalignment) in the
    # matching basis, a fair coin otherwise.
    flip = rng.random(n) < channel.misalignment
    coin = rng.integers(0, 2, n, dtype=np.uint8)
    signal_bit = np.where(same, enc_bits ^ flip.astype(np.uint8), coin)
    # Two detectors (bit 0 and bit 1), each with its own dark counts.
    dark0 = rng.random(n) < channel.dark_count_prob
    dark1 = rng.random(n) < channel.dark_count_prob
    click0 = dark0 | (signal_click & (signal_bit == 0))
    click1 = dark1 | (signal_click & (signal_bit == 1))
    detected = click0 | click1
    # Double clicks are kept and given a random bit (squashing model).
    double = click0 & click1
    bob_bits = np.where(double, rng.integers(0, 2, n, dtype=np.uint8), click1.astype(np.uint8))
    return Transmission(alice_bits, alice_bases, intensity, detected, bob_bases, bob_bits.astype(np.uint8), photons)
