"""How much of the sifted key came from single photons, and their error rate.

With decoys (vacuum + weak decoy, Ma, Qi, Zhao & Lo 2005; the gains are used as
measured, i.e. the decoy analysis is asymptotic, while the sampling margin of the
QBER estimate is added to ``e1``):
``Y1_L = mu / (mu·nu - nu^2) · (Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2 - nu^2)/mu^2 · Y0)``,
``e1_U = (E_nu Q_nu e^nu - Y0/2) / (Y1_L nu)``, ``Q1 = Y1_L mu e^-mu``.

Without decoys (GLLP): every multi-photon pulse is assumed tapped, so the single
photon share is at least ``1 - P_multi/Q_mu`` with ``P_multi = 1 - (1 + mu) e^-mu``
and all errors are charged to single photons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SinglePhotonBound:
    fraction: float  # lower bound on the share of sifted signal bits from single photons
    e1_upper: float  # upper bound on their error rate
    method: str

    def with_sampling_margin(self, margin: float) -> SinglePhotonBound:
        """Add the finite-sample margin of the QBER estimate (``Q_U - Q``) to ``e1``,
        charged entirely to single photons. The decoy gains themselves are taken as
        measured (asymptotic decoy analysis)."""
        if self.fraction <= 0:
            return self
        return SinglePhotonBound(self.fraction, min(self.e1_upper + margin / self.fraction, 0.5), self.method)

    @property
    def usable(self) -> bool:
        return self.fraction > 0 and self.e1_upper < 0.5


def decoy_bound(mu: float, nu: float, gain_mu: float, gain_nu: float, y0: float, e_nu: float) -> SinglePhotonBound:
    """Vacuum + weak decoy estimate of ``Q1/Q_mu`` and ``e1``."""
    if gain_mu <= 0:
        return SinglePhotonBound(0.0, 0.5, "decoy")
    y1 = (
        mu
        / (mu * nu - nu * nu)
        * (gain_nu * math.exp(nu) - gain_mu * math.exp(mu) * nu * nu / (mu * mu) - (mu * mu - nu * nu) / (mu * mu) * y0)
    )
    if y1 <= 0:
        return SinglePhotonBound(0.0, 0.5, "decoy")
    e1 = (e_nu * gain_nu * math.exp(nu) - y0 / 2) / (y1 * nu)
    q1 = y1 * mu * math.exp(-mu)
    return SinglePhotonBound(min(q1 / gain_mu, 1.0), min(max(e1, 0.0), 0.5), "decoy")


def gllp_bound(mu: float, gain_mu: float, qber_upper: float) -> SinglePhotonBound:
    """No decoys: assume Eve holds every multi-photon pulse."""
    if gain_mu <= 0:
        return SinglePhotonBound(0.0, 0.5, "gllp")
    p_multi = 1 - (1 + mu) * math.exp(-mu)
    fraction = 1 - p_multi / gain_mu
    if fraction <= 0:
        return SinglePhotonBound(0.0, 0.5, "gllp")
    return SinglePhotonBound(fraction, min(qber_upper / fraction, 0.5), "gllp")
