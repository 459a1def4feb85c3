"""Batch verification with random 128-bit weights, and finding the bad ones.

For weights ``w_i``: ``(Σ w_i σ_i)·P == Σ_p (Σ_{i∈p} w_i)·SID1_p + Σ (w_i h5_i)·pk_V_i
+ (Σ w_i h2_i)·pk_TA``. The left side and the pk_TA term are one multiplication per
batch, the SID1 terms one per distinct pseudonym, and only the fresh ``pk_V`` terms
cost one multiplication per signature. A forged signature passes with probability
at most 2^-128.
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PublicKey

from vehicles.ibc.curve import SYSTEM_RNG, Q, RandomSource, base_mul, h2, mul, parse_point
from vehicles.ibc.message import SignedMessage
from vehicles.ibc.signature import challenge, verify_signature

WEIGHT_BITS = 128


def batch_verify(items: Sequence[SignedMessage], pk_ta: bytes, rng: RandomSource | None = None) -> bool:
    """True when every signature in ``items`` is valid (with overwhelming probability)."""
    if not items:
        return True
    if len(items) == 1:
        return verify_signature(items[0], pk_ta)
    source = rng or SYSTEM_RNG
    try:
        lhs = 0
        h2_sum = 0
        sid1_weights: dict[bytes, int] = {}
        terms: list[PublicKey] = []
        for item in items:
            w = source.randbelow(1 << WEIGHT_BITS) | 1  # nonzero
            c = challenge(item.pseudonym, item.pk_v, item.timestamp_ms, item.message)
            lhs += w * item.sigma
            sid = item.pseudonym.encode()
            h2_sum += w * h2(sid)
            sid1_weights[item.pseudonym.sid1] = sid1_weights.get(item.pseudonym.sid1, 0) + w
            terms.append(mul(parse_point(item.pk_v, "pk_V"), w * c % Q))
        terms.extend(mul(parse_point(sid1, "SID1"), w % Q) for sid1, w in sid1_weights.items())
        terms.append(mul(parse_point(pk_ta, "pk_TA"), h2_sum % Q))
        lhs %= Q
        rhs = PublicKey.combine_keys(terms)
        if lhs == 0:  # probability ~2^-256; decide one by one rather than special-case infinity
            return all(verify_signature(i, pk_ta) for i in items)
        return base_mul(lhs).format() == rhs.format()
    except ValueError:
        return False


def find_invalid(items: Sequence[SignedMessage], pk_ta: bytes, rng: RandomSource | None = None) -> list[int]:
    """Indices of the invalid signatures in ``items``, by recursive halving.

    One batch check when all are valid; about ``2·k·log2(n/k)`` checks for ``k`` bad ones.
    """
    bad: list[int] = []

    def split(lo: int, hi: int) -> None:
        if batch_verify(items[lo:hi], pk_ta, rng):
            return
        if hi - lo == 1:
            bad.append(lo)
            return
        mid = (lo + hi) // 2
        split(lo, mid)
        split(mid, hi)

    split(0, len(items))
    return bad
