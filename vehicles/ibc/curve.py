"""secp256k1 through coincurve, and the domain-separated hashes h1..h5.

Points travel as 33-byte compressed encodings; scalars as ints in [1, q).
"""

from __future__ import annotations

import hashlib
import random
import secrets
from typing import Protocol

from coincurve import PublicKey

from vehicles.errors import InvalidPoint, ScalarOutOfRange, WrongLength

Q = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group."""
POINT_LEN = 33
SCALAR_LEN = 32


class RandomSource(Protocol):
    def randbelow(self, n: int) -> int: ...


class SystemRng:
    """The operating system's CSPRNG (the default everywhere)."""

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)


class SeededRng:
    """Reproducible randomness for tests and benchmarks. Never for real keys."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._random.randrange(n)


SYSTEM_RNG = SystemRng()


def random_scalar(rng: RandomSource | None = None) -> int:
    """Uniform in [1, q)."""
    return (rng or SYSTEM_RNG).randbelow(Q - 1) + 1


def scalar_bytes(k: int) -> bytes:
    return (k % Q).to_bytes(SCALAR_LEN, "big")


def base_mul(k: int) -> PublicKey:
    """k·P for the generator P."""
    return PublicKey.from_secret(scalar_bytes(k))


def mul(point: PublicKey, k: int) -> PublicKey:
    return point.multiply(scalar_bytes(k))


def parse_point(data: bytes, what: str) -> PublicKey:
    """Parse a compressed point.

    Raises:
        WrongLength: not 33 bytes.
        InvalidPoint: not on the curve / bad prefix.
    """
    if len(data) != POINT_LEN:
        raise WrongLength(what, POINT_LEN, len(data))
    if data[0] not in (2, 3):
        raise InvalidPoint(what)
    try:
        return PublicKey(data)
    except ValueError as exc:
        raise InvalidPoint(what) from exc


def parse_scalar(data: bytes, what: str) -> int:
    """Parse a 32-byte big-endian scalar in [1, q).

    Raises:
        WrongLength, ScalarOutOfRange
    """
    if len(data) != SCALAR_LEN:
        raise WrongLength(what, SCALAR_LEN, len(data))
    k = int.from_bytes(data, "big")
    if not 0 < k < Q:
        raise ScalarOutOfRange(what)
    return k


def _digest(tag: bytes, *parts: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(b"qkdchain/ibc/v1/" + tag)
    for part in parts:
        h.update(part)
    return h.digest()


def _to_zq_star(digest: bytes) -> int:
    # Bias is below 2**-128: q differs from 2**256 by less than 2**129.
    return int.from_bytes(digest, "big") % (Q - 1) + 1


def h1(shared: bytes, pk_ta: bytes) -> bytes:
    """32-byte mask that hides the long-term identity in SID2 (eq. 2)."""
    return _digest(b"h1", shared, pk_ta)


def h2(sid: bytes) -> int:
    return _to_zq_star(_digest(b"h2", sid))


def h3(sid1: bytes, t: bytes) -> int:
    return _to_zq_star(_digest(b"h3", sid1, t))


def h4(sid2: bytes, t: bytes) -> int:
    return _to_zq_star(_digest(b"h4", sid2, t))


def h5(pk_v: bytes, h3_value: int, h4_value: int, message: bytes, t: bytes) -> int:
    # The message is length-prefixed so that no two (message, t) pairs share an input.
    return _to_zq_star(
        _digest(
            b"h5",
            pk_v,
            scalar_bytes(h3_value),
            scalar_bytes(h4_value),
            len(message).to_bytes(4, "big"),
            message,
            t,
        )
    )
