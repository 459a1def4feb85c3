"""The quantum channel model: loss, detectors, noise. Pure parameters, no state.

Transmittance ``eta = 10^(-(alpha·L + extra)/10) · eta_det``. A pulse of ``n``
photons is detected with probability ``1 - (1 - eta)^n``; each of Bob's two
detectors also fires a dark count with probability ``p_dark`` per gate;
misalignment flips a detected photon's outcome with probability ``e_mis``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qkd.errors import ConfigError


@dataclass(frozen=True)
class ChannelModel:
    distance_km: float = 10.0
    attenuation_db_per_km: float = 0.2
    extra_loss_db: float = 0.0
    detector_efficiency: float = 0.6
    dark_count_prob: float = 1e-6
    misalignment: float = 0.01

    def __post_init__(self) -> None:
        if self.distance_km < 0 or self.attenuation_db_per_km < 0 or self.extra_loss_db < 0:
            raise ConfigError("distance, attenuation and extra loss must be non-negative")
        for name in ("detector_efficiency", "dark_count_prob", "misalignment"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.detector_efficiency == 0:
            raise ConfigError("detector_efficiency must be positive")

    @property
    def loss_db(self) -> float:
        return self.distance_km * self.attenuation_db_per_km + self.extra_loss_db

    @property
    def transmittance(self) -> float:
        """Overall single-photon detection probability (channel and detector)."""
        return float(10 ** (-self.loss_db / 10) * self.detector_efficiency)

    def detection_prob(self, mu: float) -> float:
        """Probability that a Poisson pulse of mean ``mu`` gives at least one click
        (signal or dark), the standard gain ``Q_mu``."""
        y0 = 1 - (1 - self.dark_count_prob) ** 2
        return 1 - (1 - y0) * math.exp(-mu * self.transmittance)

    def expected_qber(self, mu: float) -> float:
        """Expected QBER of the sifted key without Eve, for mean photon number ``mu``.

        Enumerating what the signal does (right detector ``a = s(1-e)``, wrong detector
        ``b = s·e``, nothing ``1-s``, with ``s = 1 - e^(-mu·eta)``) and adding each
        detector's dark counts, with double clicks given a random bit:
        ``E = (a·p/2 + b·(1 - p/2) + (1-s)·Y0/2) / Q_mu``.
        """
        p = self.dark_count_prob
        y0 = 1 - (1 - p) ** 2
        s = 1 - math.exp(-mu * self.transmittance)
        a, b = s * (1 - self.misalignment), s * self.misalignment
        gain = self.detection_prob(mu)
        if gain == 0:
            return 0.5  # nothing is ever detected (vacuum, no dark counts): no information
        return (a * p / 2 + b * (1 - p / 2) + (1 - s) * y0 / 2) / gain


def fibre(distance_km: float) -> ChannelModel:
    """A telecom fibre link: 0.2 dB/km, InGaAs-like detector (10 %, 1e-6 dark counts)."""
    return ChannelModel(distance_km, 0.2, 0.0, 0.10, 1e-6, 0.015)


def free_space_v2i(distance_km: float = 0.1) -> ChannelModel:
    """A short free-space vehicle-to-infrastructure link: 0.1 dB/km clear air, 10 dB
    pointing and geometric loss, silicon detector (60 %), daylight dark counts 1e-5,
    2 % misalignment from platform motion."""
    return ChannelModel(distance_km, 0.1, 10.0, 0.60, 1e-5, 0.02)
