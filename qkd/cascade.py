"""Cascade error correction (Brassard & Salvail), Bob correcting toward Alice.

Bob learns parities of Alice's bits through a :class:`ParityOracle` (the classical
channel); every parity answered is one bit leaked to Eve and is counted. Pass 1
uses blocks of ``k1 = 0.73 / Q``, each later pass doubles the block size over a
fresh public permutation. An error found in a later pass flips the parity of the
blocks holding it in every earlier pass, which are then searched again (the
cascade), so each error costs about ``log2(k)`` parities.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qkd.errors import ConfigError


class ParityOracle(Protocol):
    """Alice's side: parities of her bits over index sets, one round trip per call."""

    def parities(self, index_sets: Sequence[np.ndarray]) -> np.ndarray: ...


class LocalParities:
    """Alice's answers computed from her bits, counting rounds and leaked bits."""

    def __init__(self, bits: np.ndarray) -> None:
        self._bits = bits
        self.rounds = 0
        self.leaked_bits = 0

    def parities(self, index_sets: Sequence[np.ndarray]) -> np.ndarray:
        self.rounds += 1
        self.leaked_bits += len(index_sets)
        return np.array([int(self._bits[idx].sum() & 1) for idx in index_sets], dtype=np.uint8)


@dataclass(frozen=True)
class CascadeResult:
    corrected: np.ndarray
    leaked_bits: int
    rounds: int
    errors_corrected: int
    passes: int


def initial_block_size(qber: float) -> int:
    return max(4, round(0.73 / max(qber, 1e-4)))


class _Pass:
    def __init__(self, order: np.ndarray, k: int) -> None:
        self.order = order  # positions in block order
        self.k = k
        self.block_of = np.empty(order.size, dtype=np.int64)
        self.block_of[order] = np.arange(order.size) // k
        self.alice_parity: np.ndarray = np.zeros(0, dtype=np.uint8)

    def block(self, b: int) -> np.ndarray:
        return self.order[b * self.k : (b + 1) * self.k]

    def blocks(self) -> list[np.ndarray]:
        return [self.block(b) for b in range((self.order.size + self.k - 1) // self.k)]


def cascade(
    bob: np.ndarray,
    oracle: ParityOracle,
    qber: float,
    passes: int = 4,
    seed: int = 0,
) -> CascadeResult:
    """Correct ``bob`` toward Alice's bits, asking ``oracle`` for her parities.

    Args:
        bob: Bob's bits (uint8 0/1); not modified.
        oracle: Alice's parity answers (the classical channel).
        qber: the estimated error rate (sets the first block size).
        passes: number of Cascade passes.
        seed: seed of the public permutations (both sides derive the same ones).

    Raises:
        ConfigError: empty input or fewer than one pass.
    """
    if bob.size == 0 or passes < 1:
        raise ConfigError("cascade needs bits and at least one pass")
    bits = bob.astype(np.uint8).copy()
    n = bits.size
    rng = np.random.default_rng(seed)
    k = min(initial_block_size(qber), n)
    done: list[_Pass] = []
    leaked = 0
    rounds = 0
    corrected = 0

    def ask(index_sets: Sequence[np.ndarray]) -> np.ndarray:
        nonlocal leaked, rounds
        leaked += len(index_sets)
        rounds += 1
        return oracle.parities(index_sets)

    def binary_search(idx: np.ndarray) -> int:
        # idx has odd parity difference; the right half's parity follows from the block's.
        while idx.size > 1:
            left = idx[: idx.size // 2]
            idx = left if ask([left])[0] != int(bits[left].sum()) & 1 else idx[idx.size // 2 :]
        return int(idx[0])

    def fix(position: int, upto: int) -> None:
        # Flip, then chase the parity changes through every pass up to ``upto``. A
        # queued block is re-checked when popped: an earlier flip may have evened it.
        nonlocal corrected
        queue: deque[tuple[int, int]] = deque()

        def flip(pos: int) -> None:
            nonlocal corrected
            bits[pos] ^= 1
            corrected += 1
            queue.extend((j, int(p.block_of[pos])) for j, p in enumerate(done[: upto + 1]))

        flip(position)
        while queue:
            j, b = queue.popleft()
            block = done[j].block(b)
            if (int(bits[block].sum()) & 1) != done[j].alice_parity[b]:
                flip(binary_search(block))

    for i in range(passes):
        order = np.arange(n) if i == 0 else rng.permutation(n)
        current = _Pass(order, k)
        blocks = current.blocks()
        current.alice_parity = ask(blocks)
        done.append(current)
        for b, block in enumerate(blocks):
            if (int(bits[block].sum()) & 1) != current.alice_parity[b]:
                fix(binary_search(block), i)
        k = min(2 * k, n)
    return CascadeResult(bits, leaked, rounds, corrected, passes)
