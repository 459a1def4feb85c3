"""Our RLP codec against the ``rlp`` package (``strict=True`` decoding): the same items for
every canonical encoding, a refusal for every input it refuses, nothing else escapes."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.exceptions import DecodingError, DeserializationError

from node import rlpcodec

items = st.recursive(
    st.binary(max_size=70),  # crosses the 55/56-byte boundary of the short form
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


def _reference(data: bytes) -> Any:
    try:
        return rlp.decode(data, strict=True)
    except (DecodingError, DeserializationError):
        return None


def _ours(data: bytes) -> Any:
    try:
        return rlpcodec.decode(data)
    except rlpcodec.RlpError:
        return None


@settings(max_examples=400)
@given(items)
def test_canonical_encodings_decode_as_the_reference(item: Any) -> None:
    encoded = rlp.encode(item)
    assert rlpcodec.decode(encoded) == item == rlp.decode(encoded, strict=True)


@settings(max_examples=400)
@given(items, st.data())
def test_damaged_encodings_are_refused_exactly_when_the_reference_refuses(item: Any, data: st.DataObject) -> None:
    encoded = bytearray(rlp.encode(item))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for damaged in (bytes(encoded), bytes(encoded[:cut]), bytes(encoded) + b"\x00"):
        assert _ours(damaged) == _reference(damaged)


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_random_bytes_agree_with_the_reference(data: bytes) -> None:
    assert _ours(data) == _reference(data)


@pytest.mark.parametrize(
    "bad",
    [
        b"\x81\x05",  # a single byte below 0x80 with a prefix
        b"\xb8\x05hello",  # the long form for a short string
        b"\xb9\x00\x38" + b"a" * 56,  # a length with a leading zero
        b"\xc2\x01",  # truncated list
        b"\x83ab",  # truncated string
        b"\x01\x02",  # trailing bytes
        b"",  # nothing
    ],
)
def test_non_canonical_and_truncated_inputs_are_refused(bad: bytes) -> None:
    with pytest.raises(rlpcodec.RlpError):
        rlpcodec.decode(bad)
    assert _reference(bad) is None


def test_nesting_is_bounded() -> None:
    deep: Any = b""
    for _ in range(rlpcodec.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(rlpcodec.RlpError, match="nested"):
        rlpcodec.decode(rlp.encode(deep))
    shallow: Any = b""
    for _ in range(rlpcodec.MAX_DEPTH):
        shallow = [shallow]
    assert rlpcodec.decode(rlp.encode(shallow)) == shallow


encodables = st.recursive(
    st.binary(max_size=70) | st.integers(min_value=0, max_value=2**300),
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=400)
@given(encodables)
def test_encoding_is_the_reference_s(item: Any) -> None:
    assert rlpcodec.encode(item) == rlp.encode(item)


@pytest.mark.parametrize("bad", [-1, True, "text", 1.5, None])
def test_what_rlp_does_not_encode_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        rlpcodec.encode(bad)
