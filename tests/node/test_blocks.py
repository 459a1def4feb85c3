"""Blocks on the wire, undoable execution, and the validator set from the registry's events."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from coincurve import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import load_artifact
from node.block import MalformedBlock, decode_block, encode_block
from node.core import Node
from node.engine.base import LogEntry
from node.validators import MEMBER_ADDED, MEMBER_REMOVED, next_validators
from tests.node.conftest import VALIDATOR_KEY, Setup, address_of, key_of, make_genesis, tx

REGISTRY = "0x" + "ab" * 20


def _event(topic: bytes, account: str, role: int, address: str = REGISTRY) -> LogEntry:
    return LogEntry(address, (topic, bytes(12) + bytes.fromhex(account[2:])), role.to_bytes(32, "big"))


def test_block_round_trips_with_raws_and_seals(setup: Setup) -> None:
    head = setup.node.head
    raws = setup.node.store.raws_of(head.number)
    header, signature, seals, decoded_raws = decode_block(encode_block(head, raws))
    assert (header, signature, seals, decoded_raws) == (head.header, head.signature, head.seals, raws)
    assert header.hash == head.hash and len(raws) == 1


def test_a_solo_block_carries_its_proposer_as_the_one_seal(setup: Setup) -> None:
    head = setup.node.head
    assert head.seals == (head.signature,)
    assert head.header.validators == (setup.node.proposer,)
    assert head.signer() == setup.node.proposer


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_decoding_garbage_only_raises_malformed_block(data: bytes) -> None:
    with pytest.raises(MalformedBlock):
        decode_block(data)


def test_mutated_block_bytes_are_refused_or_change_the_hash(setup: Setup) -> None:
    head = setup.node.head
    wire = encode_block(head, setup.node.store.raws_of(head.number))
    for i in range(0, len(wire), 7):
        mutated = wire[:i] + bytes([wire[i] ^ 0x40]) + wire[i + 1 :]
        try:
            header, signature, _seals, raws = decode_block(mutated)
        except MalformedBlock:
            continue
        # anything that still decodes is a different block, or the same header with other payload
        assert header.hash != head.hash or signature != head.signature or raws != setup.node.store.raws_of(1)


def test_genesis_is_the_same_block_whatever_the_node_key(tmp_path: Path) -> None:
    genesis = replace(make_genesis(key_of("ta"), []), validators=(address_of(VALIDATOR_KEY), address_of(key_of("o"))))
    hashes = []
    for i, key in enumerate([VALIDATOR_KEY, key_of("other")]):
        node = Node(tmp_path / str(i), genesis, key, workers=0, consensus=True)
        hashes.append(node.head.hash)
        assert node.head.signature == b""
        node.close()
    assert hashes[0] == hashes[1]


def test_an_undoable_block_is_taken_back_exactly(tmp_path: Path) -> None:
    ta, v = key_of("ta"), key_of("v0")
    genesis = replace(make_genesis(ta, [v]), validators=(address_of(VALIDATOR_KEY),), permissioned=False)
    node = Node(tmp_path, genesis, VALIDATOR_KEY, workers=0, consensus=True)  # nothing seals by itself
    try:
        watched = [address_of(ta), address_of(v), str(genesis.registry), node.proposer]
        before = [node.engine.account(a) for a in watched]
        node.submit(tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000))
        node.submit(tx(v, 0, address_of(ta), value=10**18))
        with node._cond:
            batch = node.take()
        assert len(batch) == 2
        with node._engine_lock:
            built = node.build(node.tip, batch, PrivateKey(VALIDATOR_KEY), 0, undoable=True)
            assert [r.execution.status for r in built.receipts] == [1, 1]
            assert node.engine.code(str(genesis.registry))
            node.undo()
        assert [node.engine.account(a) for a in watched] == before
        assert node.engine.storage(str(genesis.registry), 0) == 0
        assert node.mempool_size == 2  # still waiting: nothing was decided
    finally:
        node.close()


def test_validators_follow_registry_events_only() -> None:
    a, b, c = ("0x" + x * 40 for x in "123")
    current = (a, b)
    assert next_validators(current, REGISTRY, [_event(MEMBER_ADDED, c, 1)]) == (a, b, c)
    assert next_validators(current, REGISTRY, [_event(MEMBER_REMOVED, b, 1)]) == (a,)
    assert next_validators(current, REGISTRY, [_event(MEMBER_ADDED, c, 2)]) == current  # a vehicle
    assert next_validators(current, REGISTRY, [_event(MEMBER_ADDED, c, 1, address="0x" + "cd" * 20)]) == current
    assert next_validators((a,), REGISTRY, [_event(MEMBER_REMOVED, a, 1)]) == (a,)  # never empty
    assert next_validators(current, None, [_event(MEMBER_ADDED, c, 1)]) == current


def test_state_rebuilt_from_block_diffs_equals_the_live_state() -> None:
    """What the store keeps (each block's writes) must rebuild the engine exactly, through
    coinbase changes and undone blocks (the network scenario test covers the case that
    once lost a transfer's recipient: a proposer paying its own past coinbase)."""
    from node.engine.base import Account, StateDiff, Transaction
    from node.engine.revm import EMPTY_CODE_HASH, RevmEngine

    a, b, c = ("0x" + x * 40 for x in "abc")
    genesis = StateDiff(accounts={a: Account(0, 10**24, EMPTY_CODE_HASH)})
    live, rebuilt = RevmEngine(1, base_fee=10**9), RevmEngine(1, base_fee=10**9)
    live.load(genesis)
    rebuilt.load(genesis)
    steps = [(b, c, 5), (c, b, 7), (b, b, 11), (c, c, 13)]  # (coinbase, recipient, value)
    for nonce, (coinbase, to, value) in enumerate(steps):
        tx = Transaction(sender=a, nonce=nonce, to=to, data=b"", gas=21_000, value=value,
                         max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=2 * 10**9)  # fmt: skip
        live.begin_block(nonce + 1, nonce + 1, coinbase=coinbase, undoable=nonce % 2 == 1)
        live.execute(tx)
        diff = live.end_block()
        rebuilt.load(diff)
        assert [live.account(x) for x in (a, b, c)] == [rebuilt.account(x) for x in (a, b, c)]
