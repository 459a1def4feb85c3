"""Quorum arithmetic and proposer selection, as in the QBFT specification."""

from __future__ import annotations

from collections.abc import Sequence


def quorum(n: int) -> int:
    """The smallest set size any two of which share an honest validator: ceil(2n/3) (1 for n=1)."""
    return (2 * n - 1) // 3 + 1 if n > 0 else 0


def max_faulty(n: int) -> int:
    """The number of Byzantine validators ``n`` validators tolerate: (n-1)//3."""
    return (n - 1) // 3 if n > 0 else 0


def proposer_of(validators: Sequence[str], height: int, round: int) -> str:
    """The proposer of ``(height, round)``: ``validators[(height + round) % n]`` (a rotation per height)."""
    return validators[(height + round) % len(validators)]
