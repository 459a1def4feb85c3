"""Wire format: round trips, and a decoder that only ever raises ConsensusError subclasses."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.consensus.errors import BadSignature, ConsensusError, MalformedMessage, OversizedMessage
from node.consensus.messages import (
    MAX_MESSAGE_BYTES,
    Commit,
    Prepare,
    Proposal,
    RoundChange,
    SignedMessage,
    decode,
    encode,
    sign,
)
from tests.consensus.conftest import Net

FUZZ = settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

uint64 = st.integers(min_value=0, max_value=2**64 - 1)
digest = st.binary(min_size=32, max_size=32)


def samples(net: Net) -> list[SignedMessage]:
    block = net.block(0)
    prepares = net.prepares([0, 1, 3], 0, block)
    change = net.round_change(0, 1, (0, block, prepares))
    stripped = [sign(change.payload.stripped(), net.keys[0]), net.round_change(1, 1), net.round_change(3, 1)]
    return [
        sign(Proposal(1, 0, block), net.keys[1]),
        sign(Proposal(1, 1, net.ops.with_round(block, 1), tuple(stripped), prepares), net.keys[2]),
        prepares[0],
        sign(Commit(1, 0, net.ops.digest(block), net.keys[0].sign_recoverable(b"\x01" * 32, hasher=None)), net.keys[0]),
        change,
        net.round_change(2, 5),
    ]


def test_round_trip_of_every_kind(net: Net) -> None:
    for message in samples(net):
        assert decode(encode(message)) == message
        assert message.sender in net.addresses


@given(height=uint64, round_=uint64, digest=digest, prepared=st.none() | st.tuples(uint64, digest, st.binary()))
@settings(max_examples=50, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_round_trip_of_any_fields(
    net: Net, height: int, round_: int, digest: bytes, prepared: tuple[int, bytes, bytes] | None
) -> None:
    prepare = sign(Prepare(height, round_, digest), net.keys[0])
    assert decode(encode(prepare)) == prepare
    if prepared is None:
        change = RoundChange(height, round_)
    else:
        change = RoundChange(height, round_, prepared[0], prepared[1], prepared[2], (prepare,))
    signed = sign(change, net.keys[1])
    assert decode(encode(signed)) == signed


@given(data=st.binary(max_size=600))
@FUZZ
def test_random_bytes_raise_only_consensus_errors(data: bytes) -> None:
    with pytest.raises(ConsensusError):
        decode(data)


@given(data=st.data())
@FUZZ
def test_mutated_encodings_decode_or_raise_consensus_errors(net: Net, data: st.DataObject) -> None:
    wire = bytearray(encode(data.draw(st.sampled_from(samples(net)))))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(wire) - 1))
        if op == "flip":
            wire[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del wire[at : at + data.draw(st.integers(1, 40))]
        else:
            wire[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not wire:
            wire = bytearray(b"\x80")
    try:
        decoded = decode(bytes(wire))
    except ConsensusError:
        return
    assert encode(decoded) == bytes(wire)  # what decodes is canonical


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(OversizedMessage) as info:
        decode(b"\x00" * (MAX_MESSAGE_BYTES + 1))
    assert info.value.size == MAX_MESSAGE_BYTES + 1


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    data = b"\xc0"
    for _ in range(5000):  # canonical RLP lists nested far deeper than the recursion limit
        size = len(data)
        length = size.to_bytes((size.bit_length() + 7) // 8, "big")
        data = (bytes([0xC0 + size]) if size < 56 else bytes([0xF7 + len(length)]) + length) + data
    with pytest.raises(MalformedMessage):
        decode(data)


@pytest.mark.parametrize(
    "fields",
    [
        [b"\x00\x01", b"", b"\x11" * 32],  # leading zero
        [b"\x01" * 9, b"", b"\x11" * 32],  # 2**64 or more
        [b"\x01", b"", b"\x11" * 31],  # short digest
        [b"\x01", b"", b"\x11" * 32, b""],  # extra field
        [[b"\x01"], b"", b"\x11" * 32],  # list where an integer belongs
    ],
)
def test_exact_field_widths(net: Net, fields: list[object]) -> None:
    good = rlp.decode(encode(sign(Prepare(1, 0, b"\x11" * 32), net.keys[0])))
    with pytest.raises(MalformedMessage):
        decode(rlp.encode([good[0], fields, good[2], good[3]]))


def test_bad_signatures(net: Net) -> None:
    kind, fields, signature, extras = rlp.decode(encode(sign(Prepare(1, 0, b"\x11" * 32), net.keys[0])))
    high_s = signature[:32] + (2**256 - 1).to_bytes(32, "big") + signature[64:]
    for bad in (b"\x00" * 65, signature[:64] + b"\x05", high_s):
        with pytest.raises(BadSignature):
            decode(rlp.encode([kind, fields, bad, extras]))
    with pytest.raises(MalformedMessage):
        decode(rlp.encode([kind, fields, signature[:64], extras]))


def test_nested_messages_are_restricted(net: Net) -> None:
    block = net.block(0)
    prepares = net.prepares([0, 1, 3], 0, block)
    full = net.round_change(0, 1, (0, block, prepares))  # carries a block: not allowed inside a proposal
    proposal = sign(Proposal(1, 1, net.ops.with_round(block, 1), (full,), prepares), net.keys[2])
    with pytest.raises(MalformedMessage):
        decode(encode(proposal))
    wrong_kind = sign(Proposal(1, 1, block, (), ()), net.keys[2])
    kind, fields, signature, _ = rlp.decode(encode(wrong_kind))
    commit = rlp.decode(encode(samples(net)[3]))
    with pytest.raises(MalformedMessage):
        decode(rlp.encode([kind, fields, signature, [[commit], []]]))
