"""The Trusted Authority: issues pseudonyms and alias keys, and traces pseudonyms (eq. 1-3).

Registration of long-term identity ``ID`` (32 bytes):
``SID1 = r·P``, ``SID2 = ID xor h1(sk_TA·SID1, pk_TA)``, ``SID = SID1 || SID2``,
alias key ``sid = r + h2(SID)·sk_TA mod q`` so that ``sid·P = SID1 + h2(SID)·pk_TA``.
Only the TA can undo the mask: ``ID = SID2 xor h1(sk_TA·SID1, pk_TA)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

from vehicles.errors import ScalarOutOfRange, WrongLength
from vehicles.ibc.curve import (
    POINT_LEN,
    Q,
    RandomSource,
    base_mul,
    h1,
    h2,
    mul,
    parse_point,
    random_scalar,
)

ID_LEN = 32
PSEUDONYM_LEN = POINT_LEN + ID_LEN


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Pseudonym:
    """``SID = SID1 || SID2``: public, unlinkable to ``ID`` for anyone but the TA."""

    sid1: bytes
    sid2: bytes

    def encode(self) -> bytes:
        return self.sid1 + self.sid2

    @classmethod
    def decode(cls, data: bytes) -> Pseudonym:
        """Raises WrongLength or InvalidPoint."""
        if len(data) != PSEUDONYM_LEN:
            raise WrongLength("pseudonym", PSEUDONYM_LEN, len(data))
        parse_point(data[:POINT_LEN], "SID1")
        return cls(data[:POINT_LEN], data[POINT_LEN:])

    @property
    def pseudonym_id(self) -> bytes:
        """The 32-byte id recorded on chain: ``keccak256(SID)``."""
        return keccak(self.encode())


@dataclass(frozen=True)
class Credential:
    """What a vehicle holds: its pseudonym, its secret alias key ``sid`` and the TA's key."""

    pseudonym: Pseudonym
    alias_key: int
    pk_ta: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"Credential(pseudonym_id=0x{self.pseudonym.pseudonym_id.hex()})"


class TrustedAuthority:
    """Holds ``sk_TA``; issues credentials and traces pseudonyms.

    Args:
        secret_key: ``sk_TA`` in [1, q); random when omitted.
        rng: randomness for keys and ``r`` (seed it for reproducible tests).
    """

    def __init__(self, secret_key: int | None = None, rng: RandomSource | None = None) -> None:
        self._rng = rng
        if secret_key is not None and not 0 < secret_key < Q:
            raise ScalarOutOfRange("sk_TA")
        self._sk = random_scalar(rng) if secret_key is None else secret_key
        self.public_key: bytes = base_mul(self._sk).format()

    def issue(self, identity: bytes) -> Credential:
        """Register long-term ``identity`` (32 bytes) under a fresh pseudonym.

        Call again for more pseudonyms of the same vehicle; they are unlinkable.

        Raises:
            WrongLength: identity is not 32 bytes.
        """
        if len(identity) != ID_LEN:
            raise WrongLength("identity", ID_LEN, len(identity))
        r = random_scalar(self._rng)
        sid1_point = base_mul(r)
        sid1 = sid1_point.format()
        shared = mul(sid1_point, self._sk).format()
        sid2 = _xor(identity, h1(shared, self.public_key))
        pseudonym = Pseudonym(sid1, sid2)
        alias = (r + h2(pseudonym.encode()) * self._sk) % Q
        return Credential(pseudonym, alias, self.public_key)

    def trace(self, pseudonym: Pseudonym) -> bytes:
        """Recover the long-term identity behind ``pseudonym`` (eq. 3)."""
        shared = mul(parse_point(pseudonym.sid1, "SID1"), self._sk).format()
        return _xor(pseudonym.sid2, h1(shared, self.public_key))
