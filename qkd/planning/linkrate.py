"""Key-rate demand to wavelengths, through the same physics as our QKD sessions.

A fibre link of ``km`` is cut by trusted relays into ``n = ceil(km / span)`` equal spans,
where ``span = min(transmitter spacing, reach)``: the seed's 160 km between QKD
transmitters (its D), unless our channel cannot reach that far, in which case relays sit
at the reach. One QKD link (3 wavelengths: quantum channel plus two classical ones,
seed Sec. III) delivers the rate of one of its spans, ``K = pulse_rate ·
decoy_rate(fibre(km / n), mu)`` from :mod:`qkd.keyrate` (asymptotic decoy-state BB84 with
:func:`qkd.channel.fibre`'s 0.2 dB/km, 10 % detector, 10⁻⁶ dark counts, 1.5 %
misalignment). A request of ``kappa`` bit/s then needs ``P = ceil(kappa / K)`` parallel QKD
links (seed eq. 1): ``3P`` QKD wavelengths and ``P`` KM wavelengths on that link (seed eq.
21-22 with W^qkd = 3, W^kml = 1).

Choices: the pulse rate is 1 GHz (commercial decoy-BB84 systems run at 1 GHz); ``mu`` is
optimised per span length (bounded scalar search in [0.01, 1.5]) unless fixed. With these,
a 160 km span gives about 3.4 kbit/s, the order of the seed's Fig. 7(a) key rates (1-10 kb/s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar

from qkd.channel import fibre
from qkd.keyrate import decoy_rate
from qkd.planning.errors import InvalidModel

QKD_WAVELENGTHS_PER_LINK = 3
KM_WAVELENGTHS_PER_LINK = 1


@dataclass(frozen=True)
class LinkPhysics:
    """How a fibre link turns into key rate. Raises :class:`InvalidModel` for non-positive values."""

    pulse_rate_hz: float = 1e9
    transmitter_spacing_km: float = 160.0
    mu: float | None = None  # None: optimised per span

    def __post_init__(self) -> None:
        if not self.pulse_rate_hz > 0 or not self.transmitter_spacing_km > 0:
            raise InvalidModel("pulse rate and transmitter spacing must be positive")
        if self.mu is not None and not 0 < self.mu < 10:
            raise InvalidModel(f"mu must be in (0, 10), got {self.mu}")

    def span_rate_bps(self, span_km: float) -> float:
        """Secret-key bits per second of one QKD link over a single span of ``span_km``."""
        return _span_rate_bps(self.pulse_rate_hz, self.mu, round(span_km, 6))

    @property
    def reach_km(self) -> float:
        """The longest span with a positive key rate (to 0.1 km)."""
        return _reach_km(self.pulse_rate_hz, self.mu)

    @property
    def span_km(self) -> float:
        """Longest distance between trusted relays actually used."""
        return min(self.transmitter_spacing_km, self.reach_km)

    def segments(self, link_km: float) -> int:
        """Trusted-relay spans on a link of ``link_km`` (at least 1)."""
        return max(1, math.ceil(link_km / self.span_km - 1e-9))

    def link_rate_bps(self, link_km: float) -> float:
        """Key rate of one QKD link across ``link_km`` (relayed: the rate of one of its spans)."""
        return self.span_rate_bps(link_km / self.segments(link_km))

    def parallel_links(self, rate_bps: float, link_km: float) -> int:
        """``P = ceil(rate / K)``: parallel QKD links a demand of ``rate_bps`` needs on this link."""
        return int(self.parallel_links_many(np.array([[rate_bps]]), [link_km])[0, 0, 0])

    def parallel_links_many(self, rates_bps: NDArray[np.float64], links_km: Sequence[float]) -> NDArray[np.int64]:
        """``P[s, f, l]`` for rates ``[s, f]`` (bit/s) on links of ``links_km`` (vectorised)."""
        k = np.array([self.link_rate_bps(x) for x in links_km])
        p = np.ceil(rates_bps[:, :, None] / k[None, None, :] - 1e-12)
        out: NDArray[np.int64] = np.maximum(p, 0).astype(np.int64)
        return out


def _optimal_rate(span_km: float, mu: float | None) -> float:
    channel = fibre(span_km)
    if mu is not None:
        return decoy_rate(channel, mu)
    best = minimize_scalar(lambda m: -decoy_rate(channel, float(m)), bounds=(0.01, 1.5), method="bounded")
    return max(decoy_rate(channel, float(best.x)), decoy_rate(channel, 0.5))


@lru_cache(maxsize=4096)
def _span_rate_bps(pulse_rate_hz: float, mu: float | None, span_km: float) -> float:
    return pulse_rate_hz * _optimal_rate(span_km, mu)


@lru_cache(maxsize=64)
def _reach_km(pulse_rate_hz: float, mu: float | None) -> float:
    lo, hi = 0.0, 1000.0
    if _optimal_rate(lo, mu) <= 0:
        raise InvalidModel("the channel gives no key even at 0 km")
    while hi - lo > 0.05:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _optimal_rate(mid, mu) > 0 else (lo, mid)
    return math.floor(lo * 10) / 10
