"""Issuing, tracing, signing and verifying pseudonym signatures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.vehicles.ibc.conftest import NOW_MS
from vehicles.ibc import SignedMessage, TrustedAuthority, sign, verify_signature
from vehicles.ibc.authority import Pseudonym
from vehicles.ibc.curve import Q, SeededRng, base_mul, h2, mul, parse_point


def _identity(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_alias_key_matches_public_alias(ta: TrustedAuthority) -> None:
    cred = ta.issue(_identity(7))
    sid_point = base_mul(cred.alias_key)
    expected = parse_point(cred.pseudonym.sid1, "SID1").combine(
        [mul(parse_point(ta.public_key, "pk_TA"), h2(cred.pseudonym.encode()))]
    )
    assert sid_point.format() == expected.format()


def test_many_random_messages_verify(ta: TrustedAuthority, rng: SeededRng) -> None:
    creds = [ta.issue(_identity(i)) for i in range(5)]
    for i in range(60):
        cred = creds[i % 5]
        message = rng.randbelow(1 << (8 * (i % 40 + 1))).to_bytes(i % 40 + 1, "big")
        signed = sign(cred, message, NOW_MS + i, rng)
        assert verify_signature(signed, ta.public_key)
        assert verify_signature(SignedMessage.decode(signed.encode()), ta.public_key)


def _forgeries(signed: SignedMessage, other: SignedMessage) -> dict[str, SignedMessage]:
    flip = bytes([signed.pseudonym.sid2[0] ^ 1]) + signed.pseudonym.sid2[1:]
    return {
        "message": replace(signed, message=signed.message + b"!"),
        "sigma": replace(signed, sigma=(signed.sigma + 1) % Q),
        "SID1": replace(signed, pseudonym=Pseudonym(other.pseudonym.sid1, signed.pseudonym.sid2)),
        "SID2": replace(signed, pseudonym=Pseudonym(signed.pseudonym.sid1, flip)),
        "pk_V": replace(signed, pk_v=other.pk_v),
        "timestamp": replace(signed, timestamp_ms=signed.timestamp_ms + 1),
        "other pseudonym": replace(signed, pseudonym=other.pseudonym),
    }


@pytest.mark.parametrize("what", ["message", "sigma", "SID1", "SID2", "pk_V", "timestamp", "other pseudonym"])
def test_forgeries_refused(ta: TrustedAuthority, rng: SeededRng, what: str) -> None:
    signed = sign(ta.issue(_identity(1)), b"brake now", NOW_MS, rng)
    other = sign(ta.issue(_identity(2)), b"brake now", NOW_MS, rng)
    assert not verify_signature(_forgeries(signed, other)[what], ta.public_key)


def test_signature_under_another_ta_refused(rng: SeededRng) -> None:
    ta1, ta2 = TrustedAuthority(rng=rng), TrustedAuthority(rng=rng)
    signed = sign(ta1.issue(_identity(1)), b"hello", NOW_MS, rng)
    assert verify_signature(signed, ta1.public_key)
    assert not verify_signature(signed, ta2.public_key)


def test_key_only_forgery_refused(ta: TrustedAuthority, rng: SeededRng) -> None:
    """Knowing SID and pk_TA but not sid: a signature with a guessed sigma fails."""
    cred = ta.issue(_identity(1))
    stolen = replace(cred, alias_key=(cred.alias_key + 1) % Q)
    assert not verify_signature(sign(stolen, b"x", NOW_MS, rng), ta.public_key)


def test_tracing_recovers_identity(ta: TrustedAuthority) -> None:
    ident = _identity(0xC0FFEE)
    creds = [ta.issue(ident) for _ in range(3)]
    assert all(ta.trace(c.pseudonym) == ident for c in creds)
    # several pseudonyms of one vehicle share nothing visible
    assert len({c.pseudonym.sid1 for c in creds}) == 3
    assert len({c.pseudonym.sid2 for c in creds}) == 3


def test_tracing_needs_the_ta_secret(ta: TrustedAuthority, rng: SeededRng) -> None:
    ident = _identity(42)
    cred = ta.issue(ident)
    impostor = TrustedAuthority(rng=rng)
    assert impostor.trace(cred.pseudonym) != ident


def test_seeded_runs_are_reproducible() -> None:
    a = sign(TrustedAuthority(rng=SeededRng(5)).issue(_identity(1)), b"m", NOW_MS, SeededRng(6))
    b = sign(TrustedAuthority(rng=SeededRng(5)).issue(_identity(1)), b"m", NOW_MS, SeededRng(6))
    assert a == b


def test_bad_inputs() -> None:
    from vehicles.errors import ScalarOutOfRange, WrongLength

    with pytest.raises(ScalarOutOfRange):
        TrustedAuthority(secret_key=0)
    with pytest.raises(ScalarOutOfRange):
        TrustedAuthority(secret_key=Q)
    with pytest.raises(WrongLength):
        TrustedAuthority(rng=SeededRng(1)).issue(b"short")
