"""Sifting: keep the detected pulses where Alice's and Bob's bases agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qkd.bb84 import SIGNAL, Transmission


@dataclass(frozen=True)
class Sifted:
    alice: np.ndarray  # uint8 bits
    bob: np.ndarray  # uint8 bits
    announced_bits: int  # classical bits sent: Bob's click pattern and bases, Alice's basis matches

    @property
    def length(self) -> int:
        return int(self.alice.size)

    @property
    def true_qber(self) -> float:
        """The real error rate (only a simulation can know it)."""
        return float(np.mean(self.alice != self.bob)) if self.length else 0.0


def sift(tx: Transmission, intensity: int = SIGNAL) -> Sifted:
    """Keep detected pulses of ``intensity`` whose bases match.

    Bob announces which pulses clicked and his basis for each (public); Alice answers
    with one match bit per click. Decoy and vacuum pulses are never part of the key.
    """
    keep = tx.detected & (tx.alice_bases == tx.bob_bases) & (tx.intensity == intensity)
    announced = tx.pulses + 2 * tx.detections  # click bitmap, Bob's bases, match bits
    return Sifted(tx.alice_bits[keep].copy(), tx.bob_bits[keep].copy(), announced)
