"""Signing and single verification (eq. 4-7).

Sign ``S`` at time ``t``: fresh ``sk_V``, ``pk_V = sk_V·P``,
``sigma = sid + h5(pk_V | h3(SID1|t) | h4(SID2|t) | S | t)·sk_V mod q``.
Verify: ``sigma·P == SID1 + h5(...)·pk_V + h2(SID)·pk_TA``.
"""

from __future__ import annotations

from coincurve import PublicKey

from vehicles.ibc.authority import Credential, Pseudonym
from vehicles.ibc.curve import Q, RandomSource, base_mul, h2, h3, h4, h5, mul, parse_point, random_scalar
from vehicles.ibc.message import SignedMessage


def _t(timestamp_ms: int) -> bytes:
    return timestamp_ms.to_bytes(8, "big")


def challenge(pseudonym: Pseudonym, pk_v: bytes, timestamp_ms: int, message: bytes) -> int:
    """``h5(pk_V | h3(SID1|t) | h4(SID2|t) | S | t)``."""
    t = _t(timestamp_ms)
    return h5(pk_v, h3(pseudonym.sid1, t), h4(pseudonym.sid2, t), message, t)


def sign(credential: Credential, message: bytes, timestamp_ms: int, rng: RandomSource | None = None) -> SignedMessage:
    """Sign ``message`` at ``timestamp_ms`` (milliseconds since the epoch)."""
    if not 0 <= timestamp_ms < 1 << 64:
        raise ValueError(f"timestamp_ms out of range: {timestamp_ms}")
    sk_v = random_scalar(rng)
    pk_v = base_mul(sk_v).format()
    c = challenge(credential.pseudonym, pk_v, timestamp_ms, message)
    sigma = (credential.alias_key + c * sk_v) % Q
    return SignedMessage(credential.pseudonym, pk_v, timestamp_ms, sigma, bytes(message))


def verify_signature(signed: SignedMessage, pk_ta: bytes) -> bool:
    """True when the signature equation holds (eq. 7). Freshness, replay and
    revocation are the :class:`vehicles.ibc.verifier.Verifier`'s business."""
    try:
        sid1 = parse_point(signed.pseudonym.sid1, "SID1")
        pk_v = parse_point(signed.pk_v, "pk_V")
        ta = parse_point(pk_ta, "pk_TA")
        c = challenge(signed.pseudonym, signed.pk_v, signed.timestamp_ms, signed.message)
        rhs = PublicKey.combine_keys([sid1, mul(pk_v, c), mul(ta, h2(signed.pseudonym.encode()))])
        return base_mul(signed.sigma).format() == rhs.format()
    except ValueError:  # malformed points, or terms summing to the point at infinity
        return False
