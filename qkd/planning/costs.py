"""Component costs (seed Table III) and the price of one wavelength on one link.

A cost table has three phases: ``reservation`` (first stage, beta^r), ``utilization`` (beta^e,
paid per reserved wavelength actually used in a scenario) and ``on_demand`` (beta^o, paid per
wavelength bought in the scenario beyond the reservation). Each phase prices six components:
MDI-QKD transmitter, receiver, local key manager, security infrastructure (SI), MUX/DEMUX
pair, and fibre channel per km.

Per wavelength on a link of ``km`` with ``n`` trusted-relay spans (seed eq. 3-8, counted per
link so a route's cost is the sum of its links'):

- QKD: ``(2n·tx + n·rx) / 3 + km·ch`` (a QKD link has 2n transmitters and n receivers and
  occupies 3 wavelengths; the seed's objective carries the same 1/3);
- KM: ``(n + 1)·km + (n - 1)·si + (2n - 1)·md + km·ch`` (eq. 5-7 with ``ceil(e/D) = n``).

The default table is ``costs_table3.json`` (package data), the seed's Table III.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from qkd.planning.errors import InvalidCosts, MalformedFile

PHASES = ("reservation", "utilization", "on_demand")


@dataclass(frozen=True)
class PhaseCosts:
    transmitter: float
    receiver: float
    key_manager: float
    security_infrastructure: float
    mux_demux: float
    channel_per_km: float

    def qkd_wavelength(self, segments: int, km: float) -> float:
        """Price of one QKD wavelength on a link of ``km`` with ``segments`` spans."""
        return (2 * segments * self.transmitter + segments * self.receiver) / 3 + km * self.channel_per_km

    def km_wavelength(self, segments: int, km: float) -> float:
        """Price of one KM wavelength on a link of ``km`` with ``segments`` spans."""
        return (
            (segments + 1) * self.key_manager
            + (segments - 1) * self.security_infrastructure
            + (2 * segments - 1) * self.mux_demux
            + km * self.channel_per_km
        )


@dataclass(frozen=True)
class CostTable:
    reservation: PhaseCosts
    utilization: PhaseCosts
    on_demand: PhaseCosts

    def to_json(self) -> dict[str, dict[str, float]]:
        return {p: {f.name: getattr(getattr(self, p), f.name) for f in fields(PhaseCosts)} for p in PHASES}


def costs_from_json(data: Any, path: str = "<data>") -> CostTable:
    """A cost table from ``{phase: {component: number}}`` for the three phases.

    Raises :class:`MalformedFile` for a wrong shape and :class:`InvalidCosts` for a missing,
    non-numeric, infinite or negative cost.
    """
    if not isinstance(data, dict):
        raise MalformedFile(path, "expected an object with reservation, utilization and on_demand")
    phases: dict[str, PhaseCosts] = {}
    for phase in PHASES:
        table = data.get(phase)
        if not isinstance(table, dict):
            raise MalformedFile(path, f"missing phase {phase!r}")
        values: dict[str, float] = {}
        for f in fields(PhaseCosts):
            value = table.get(f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidCosts(f"{phase}.{f.name}", value)
            values[f.name] = float(value)
        phases[phase] = PhaseCosts(**values)
    return CostTable(**phases)


def load_costs(path: str | Path | None = None) -> CostTable:
    """The cost table in ``path``, or the seed's Table III when ``None``.

    Raises :class:`MalformedFile` (unreadable file, bad JSON) or :class:`InvalidCosts`.
    """
    if path is None:
        text = resources.files("qkd.planning").joinpath("costs_table3.json").read_text()
        return costs_from_json(json.loads(text), "costs_table3.json")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MalformedFile(str(path), f"not a readable JSON cost table ({exc})") from exc
    return costs_from_json(data, str(path))
