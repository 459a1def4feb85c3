"""How long the final key may be: every leaked bit is subtracted (DESIGN.md, step 4).

``ell = n·s·(1 - h(e1)) - leak_EC - 256 - 2·log2(1/eps_PA)`` where ``n`` is the
reconciled block (sifted bits minus the disclosed estimation sample), ``s`` the
lower bound on its share from single photons (1 for an ideal source; see
:mod:`qkd.decoy`: multi-photon bits are counted as known to Eve), ``e1`` the upper
bound on their phase error rate (by basis symmetry, the sampled QBER bound ``Q_U``
for an ideal source), ``leak_EC`` the parities Cascade disclosed, 256 the on-chain
commitment of the reconciled block (public, hence charged in full) and the last
term the privacy-amplification security cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from qkd.errors import SessionAborted
from qkd.estimation import binary_entropy

COMMITMENT_BITS = 256


@dataclass(frozen=True)
class LeakBudget:
    reconciled_bits: int
    sample_bits: int
    qber_upper: float
    leak_ec_bits: int
    commitment_bits: int = COMMITMENT_BITS
    eps_pa: float = 1e-10
    single_photon_fraction: float = 1.0
    e1_upper: float | None = None  # defaults to qber_upper

    @property
    def multi_photon_bits(self) -> float:
        return self.reconciled_bits * (1 - self.single_photon_fraction)

    @property
    def phase_error_bits(self) -> float:
        e1 = self.qber_upper if self.e1_upper is None else self.e1_upper
        return self.reconciled_bits * self.single_photon_fraction * binary_entropy(e1)

    @property
    def finite_key_bits(self) -> float:
        return 2 * math.log2(1 / self.eps_pa)

    @property
    def final_bits(self) -> int:
        """The secure final length; may be zero or negative (then no key)."""
        raw = (
            self.reconciled_bits
            - self.multi_photon_bits
            - self.phase_error_bits
            - self.leak_ec_bits
            - self.commitment_bits
            - self.finite_key_bits
        )
        return math.floor(raw)

    def require_positive(self) -> int:
        """The final length, or :class:`SessionAborted` (``key_length_not_positive``)."""
        length = self.final_bits
        if length <= 0:
            raise SessionAborted("key_length_not_positive", f"leakage leaves {length} bits: {self.terms()}")
        return length

    def terms(self) -> dict[str, float | int]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("eps_pa", "e1_upper")},
            "multi_photon_bits": round(self.multi_photon_bits, 1),
            "phase_error_bits": round(self.phase_error_bits, 1),
            "finite_key_bits": round(self.finite_key_bits, 1),
            "final_bits": self.final_bits,
        }
