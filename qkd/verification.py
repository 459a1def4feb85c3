"""Error verification and the on-chain commitment.

Verification proves correctness: Bob draws a fresh key ``r`` from the operating
system's randomness, both sides evaluate the polynomial hash
``h_r(x) = Σ_i x_i r^(d-i) mod p`` over the prime field ``p = 2^61 - 1`` with the
block cut into 60-bit words and its length appended (``d`` words in all), and compare.
Two different blocks collide for at most ``d - 1`` of the ``p - 1`` keys (a non-zero
polynomial of degree ``d - 1`` has that many roots), so one evaluation fails with
probability ``<= (d-1)/(p-1) <= d/p``. The ``t`` keys are distinct (drawn without
replacement; Alice refuses repeats): all ``t`` are roots with probability
``C(d-1, t)/C(p-1, t) <= ((d-1)/(p-1))^t <= (d/p)^t``, which is ``eps_cor``, provably,
for a block fixed before the keys are drawn; the ``61·t`` tag bits are charged to the
leakage budget. (Per-frame verification, where Bob's words are not fixed in advance,
is argued at :class:`FrameVerification`.)

The commitment is ``keccak256(session_id || block)``, the hash both sides put on chain
(seed 000's eq. 16). It is public, so its 256 bits are charged too; it is not what
proves correctness (keccak is no universal hash family).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from eth_utils.crypto import keccak

from qkd.errors import ConfigError

FIELD_BITS = 61
PRIME = (1 << FIELD_BITS) - 1
WORD_BITS = FIELD_BITS - 1  # every word is below the prime


def commitment(session_id: bytes, block: np.ndarray) -> bytes:
    """``keccak256(session_id || packbits(block))``: 32 bytes."""
    return keccak(session_id + np.packbits(block.astype(np.uint8)).tobytes())


def _words(block: np.ndarray) -> list[int]:
    bits = np.concatenate([block.astype(np.uint64), np.zeros((-block.size) % WORD_BITS, np.uint64)])
    weights = np.left_shift(np.uint64(1), np.arange(WORD_BITS - 1, -1, -1, dtype=np.uint64))
    return [int(w) for w in (bits.reshape(-1, WORD_BITS) * weights).sum(axis=1, dtype=np.uint64)]


def _length_words(block_bits: int) -> int:
    """``d``: the block's 60-bit words and its length."""
    return max(1, -(-block_bits // WORD_BITS)) + 1


def polynomial_hash(block: np.ndarray, key: int) -> int:
    """``Σ_i x_i key^(d-i) mod p`` over the 60-bit words ``x_i`` of ``block`` followed by
    its length in bits as a last word (so blocks of different lengths do not collide
    through leading zeros), by Horner's rule."""
    acc = 0
    for word in [*_words(block), int(block.size)]:
        acc = (acc * key + word) % PRIME
    return acc


@dataclass(frozen=True)
class UniversalHash:
    """``t`` independent keys of the polynomial family, sized for a block and an eps_cor."""

    keys: tuple[int, ...]
    block_bits: int

    @staticmethod
    def evaluations(block_bits: int, eps_cor: float, union: int = 1) -> int:
        """The fewest independent evaluations ``t`` with ``union · (d/p)^t <= eps_cor``,
        exactly (in rationals: the float logarithms only give the first guess).

        Raises:
            ConfigError: eps_cor outside (0, 1) or union below 1.
        """
        if not 0 < eps_cor < 1 or union < 1:
            raise ConfigError("eps_cor must be in (0, 1), over a union of at least one")
        per = UniversalHash.collision_per_key(block_bits)
        t = max(1, math.ceil(math.log(eps_cor / union) / math.log(per)))
        exact, target = Fraction(_length_words(block_bits), PRIME), Fraction(eps_cor)
        while union * exact**t > target:
            t += 1
        while t > 1 and union * exact ** (t - 1) <= target:
            t -= 1
        assert union * exact**t <= target  # what eps_cor promises, not a float's rounding
        return t

    @staticmethod
    def collision_per_key(block_bits: int) -> float:
        return _length_words(block_bits) / PRIME

    @classmethod
    def fresh(cls, block_bits: int, eps_cor: float, union: int = 1) -> UniversalHash:
        """``t`` distinct keys (:meth:`evaluations`) drawn without replacement from the
        operating system's randomness (Alice refuses repeated keys)."""
        t = cls.evaluations(block_bits, eps_cor, union)
        return cls(tuple(secrets.SystemRandom().sample(range(1, PRIME), t)), block_bits)

    @property
    def eps_cor(self) -> float:
        return float(self.collision_per_key(self.block_bits) ** len(self.keys))

    @property
    def tag_bits(self) -> int:
        return FIELD_BITS * len(self.keys)

    def tag(self, block: np.ndarray) -> tuple[int, ...]:
        """The tag of ``block``.

        Raises:
            ConfigError: the block is not ``block_bits`` long or a key is outside the field.
        """
        if block.size != self.block_bits:
            raise ConfigError(f"block of {block.size} bits, hash sized for {self.block_bits}")
        if not all(0 < k < PRIME for k in self.keys):
            raise ConfigError("hash key outside the field")
        return tuple(polynomial_hash(block, k) for k in self.keys)


@dataclass(frozen=True)
class FrameVerification:
    """Every frame of a block verified by its own tag under one :class:`UniversalHash`.

    Bob compares up to ``comparisons`` decoded words with each frame's tag (one per
    syndrome round). Those words are not independent of the keys: whether a word is
    accepted depends on them, and after a rejection the frame restarts from fresh
    messages, so later words depend on earlier verdicts. The argument is a coupling.
    Define the *key-independent path*: the run in which every wrong word is rejected;
    the words, syndromes and decoder states along it are functions of Alice's and Bob's
    blocks and the code only, never of the hash keys. The real run follows that path
    exactly until the first false acceptance, so a false acceptance in a frame means
    that one of the at most ``comparisons`` wrong words on its key-independent path
    collides with Alice's frame: each is fixed before the keys are drawn and collides
    with probability ``<= (d/p)^t``. The frames' paths are independent of each other
    (each frame is decoded on its own; which frames are pending only decides what the
    requests name), so a union bound over frames and words gives
    ``eps_cor = frames · comparisons · (d/p)^t`` for the whole block, and
    ``frames · 61·t`` tag bits are disclosed."""

    hash: UniversalHash
    frames: int
    comparisons: int

    @staticmethod
    def evaluations(frame_bits: int, frames: int, comparisons: int, eps_cor: float) -> int:
        """Keys needed for ``eps_cor`` over the whole block.

        Raises:
            ConfigError: eps_cor outside (0, 1) or no frame or comparison.
        """
        if frames < 1 or comparisons < 1:
            raise ConfigError("frame verification needs a frame and a comparison")
        return UniversalHash.evaluations(frame_bits, eps_cor, frames * comparisons)

    @classmethod
    def fresh(cls, frame_bits: int, frames: int, comparisons: int, eps_cor: float) -> FrameVerification:
        """Keys drawn from the operating system's randomness."""
        cls.evaluations(frame_bits, frames, comparisons, eps_cor)  # checks the arguments
        return cls(UniversalHash.fresh(frame_bits, eps_cor, frames * comparisons), frames, comparisons)

    @property
    def eps_cor(self) -> float:
        return min(1.0, self.frames * self.comparisons * self.hash.eps_cor)

    @property
    def tag_bits(self) -> int:
        return self.frames * self.hash.tag_bits
