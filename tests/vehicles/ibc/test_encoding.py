"""Strict parsing of signed messages: every defect is a named error, nothing crashes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vehicles.ibc.conftest import NOW_MS
from vehicles.errors import (
    InvalidPoint,
    MalformedEncoding,
    ScalarOutOfRange,
    UnsupportedVersion,
    WrongLength,
)
from vehicles.ibc import SignedMessage, TrustedAuthority, sign
from vehicles.ibc.authority import Pseudonym
from vehicles.ibc.curve import Q, SeededRng
from vehicles.ibc.message import HEADER_LEN

_TA = TrustedAuthority(rng=SeededRng(9))
_SIGNED = sign(_TA.issue(bytes(32)), b"lane change", NOW_MS, SeededRng(10))
GOOD = _SIGNED.encode()


def test_round_trip() -> None:
    assert SignedMessage.decode(GOOD) == _SIGNED
    assert len(GOOD) == HEADER_LEN + len(b"lane change")


def _patch(offset: int, data: bytes) -> bytes:
    return GOOD[:offset] + data + GOOD[offset + len(data) :]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", WrongLength),
        (b"\x02" + GOOD[1:], UnsupportedVersion),
        (GOOD[:50], WrongLength),
        (GOOD[:-1], WrongLength),
        (GOOD + b"x", WrongLength),
        (_patch(1, b"\x05"), InvalidPoint),  # SID1 prefix
        (_patch(1 + 33 + 32, b"\x04"), InvalidPoint),  # pk_V prefix
        (_patch(1 + 1, b"\xff" * 32), InvalidPoint),  # SID1 x not on the curve (x >= p)
        (_patch(1 + 33 + 32 + 33 + 8, b"\x00" * 32), ScalarOutOfRange),
        (_patch(1 + 33 + 32 + 33 + 8, Q.to_bytes(32, "big")), ScalarOutOfRange),
        (_patch(HEADER_LEN - 4, (2**31).to_bytes(4, "big")), MalformedEncoding),
    ],
)
def test_malformed_refused_with_named_error(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        SignedMessage.decode(data)


def test_pseudonym_decode() -> None:
    p = _SIGNED.pseudonym
    assert Pseudonym.decode(p.encode()) == p
    with pytest.raises(WrongLength):
        Pseudonym.decode(p.encode()[:-1])
    assert len(p.pseudonym_id) == 32


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    with contextlib.suppress(MalformedEncoding):
        SignedMessage.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_single_byte_corruptions_are_refused_or_fail_verification(pos: int, xor: int) -> None:
    from vehicles.ibc import verify_signature

    data = bytearray(GOOD)
    data[pos] ^= xor
    try:
        parsed = SignedMessage.decode(bytes(data))
    except MalformedEncoding:
        return
    assert not verify_signature(parsed, _TA.public_key)
