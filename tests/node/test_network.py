"""Validator networks in one process: real nodes (revm, SQLite, QBFT) over the in-memory transport.

Each node is a full :class:`~node.core.Node` with its own data directory, driven by
:class:`~node.network.NetworkNode`; only the wire is in memory, with fault injection.
The same scenarios run over libp2p between OS processes in ``test_network_processes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from contracts import load_artifact
from node.admission import Genesis
from node.block import encode_block
from node.consensus.errors import ConsensusError
from node.core import Node
from node.network import NetworkConfig, NetworkNode
from node.p2p.memory import MemoryNetwork
from tests.node.conftest import address_of, calldata, key_of, tx

ROUND_S = 0.5
USERS = [key_of(f"user{i}") for i in range(8)]
WAIT_S = 60.0


def _until(predicate: Callable[[], bool], timeout_s: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Cluster:
    tmp: Path
    genesis: Genesis
    keys: list[bytes]
    wire: MemoryNetwork
    nodes: dict[int, NetworkNode]

    def start(self, i: int) -> NetworkNode:
        key = self.keys[i]
        node = Node(self.tmp / f"n{i}", self.genesis, key, workers=0, consensus=True)
        self.nodes[i] = NetworkNode(node, self.wire.transport(address_of(key)), key, NetworkConfig(ROUND_S)).start()
        return self.nodes[i]

    def stop(self, i: int) -> None:
        driver = self.nodes.pop(i)
        driver.close()
        driver.node.close()

    def heads(self) -> dict[int, int]:
        return {i: d.node.head.number for i, d in self.nodes.items()}

    def send(self, i: int, raw: bytes) -> bytes:
        return self.nodes[i].node.submit(raw)

    def wait_included(self, tx_hash: bytes, nodes: list[int] | None = None) -> None:
        for i in nodes or list(self.nodes):
            self.nodes[i].node.wait(tx_hash, timeout_s=WAIT_S)

    def assert_same_chain(self) -> None:
        """Every running node holds the same blocks, receipts and state commitments."""
        common = min(self.heads().values())
        for number in range(common + 1):
            blocks = {i: d.node.store.block_by_number(number) for i, d in self.nodes.items()}
            hashes = {b.hash for b in blocks.values() if b is not None}
            assert len(hashes) == 1, f"nodes disagree at height {number}"
            receipts = {
                i: [(r.tx_hash, r.status, r.gas_used) for r in d.node.store.receipts_of(number)]
                for i, d in self.nodes.items()
            }
            assert len({tuple(r) for r in receipts.values()}) == 1


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    keys = [key_of(f"validator-{i}") for i in range(5)]  # 4 validators and a follower
    ta = key_of("ta")
    genesis = Genesis(
        chain_id=4242,
        alloc={address_of(k): 10**21 for k in [ta, key_of("alice"), key_of("bob"), *USERS]},
        validators=tuple(sorted(address_of(k) for k in keys[:4])),
        admin=address_of(ta),
        permissioned=False,
        timestamp=1_700_000_000,
    )
    c = Cluster(tmp_path, genesis, keys, MemoryNetwork(seed=1), {})
    for i in range(4):
        c.start(i)
    try:
        yield c
    finally:
        for i in list(c.nodes):
            c.stop(i)


def _transfer(sender: str, nonce: int, to: str = "bob") -> bytes:
    return tx(key_of(sender), nonce, address_of(key_of(to)), gas=21_000, value=1, chain_id=4242)


def _from_user(i: int) -> bytes:
    """User i's first transaction: distinct senders, so any node may take any of them."""
    return _transfer(f"user{i}", 0)


def test_four_validators_finalize_identical_blocks(cluster: Cluster) -> None:
    hashes = [cluster.send(i % 4, _from_user(i)) for i in range(8)]
    for h in hashes:
        cluster.wait_included(h)
    cluster.assert_same_chain()
    head = cluster.nodes[0].node.head
    assert len(head.seals) >= 3  # a quorum of the 4 validators sealed it
    assert head.header.validators == cluster.genesis.validators


def test_a_transaction_sent_to_two_nodes_is_included_once(cluster: Cluster) -> None:
    raw = _transfer("alice", 0)
    h = cluster.send(0, raw)
    try:
        cluster.send(1, raw)
    except Exception as exc:  # already gossiped there: refused as known, which is fine
        assert type(exc).__name__ == "AlreadyKnown"
    cluster.wait_included(h)
    time.sleep(4 * ROUND_S)
    assert sum(len(list(cluster.nodes[0].node.store.receipts_of(n))) for n in range(cluster.heads()[0] + 1)) == 1


def test_a_follower_serves_the_chain_and_forwards_transactions(cluster: Cluster) -> None:
    follower = cluster.start(4)
    assert not follower.is_validator
    h = cluster.send(4, _transfer("alice", 0))
    cluster.wait_included(h)
    cluster.assert_same_chain()


def test_one_validator_down_the_chain_continues(cluster: Cluster) -> None:
    cluster.stop(3)
    hashes = [cluster.send(i % 3, _from_user(i)) for i in range(6)]
    for h in hashes:
        cluster.wait_included(h)
    cluster.assert_same_chain()


def test_two_of_four_down_nothing_finalizes_until_one_returns(cluster: Cluster) -> None:
    before = cluster.heads()[0]
    cluster.stop(2)
    cluster.stop(3)
    h = cluster.send(0, _transfer("alice", 0))
    time.sleep(6 * ROUND_S)
    assert set(cluster.heads().values()) == {before}  # no quorum: no block, no fork
    cluster.start(2)
    cluster.wait_included(h)
    cluster.assert_same_chain()


def test_partition_two_two_then_heal(cluster: Cluster) -> None:
    addresses = [address_of(k) for k in cluster.keys[:4]]
    before = cluster.heads()[0]
    cluster.wire.partition([set(addresses[:2]), set(addresses[2:])])
    h = cluster.send(0, _transfer("alice", 0))
    time.sleep(6 * ROUND_S)
    assert set(cluster.heads().values()) == {before}
    cluster.wire.heal()
    cluster.wait_included(h)
    cluster.assert_same_chain()


def test_a_restarted_validator_catches_up_and_votes_again(cluster: Cluster) -> None:
    cluster.stop(3)
    hashes = [cluster.send(0, _transfer("alice", i)) for i in range(5)]
    for h in hashes:
        cluster.wait_included(h)
    cluster.start(3)
    _until(lambda: cluster.heads()[3] == cluster.heads()[0], what="validator 3 to sync")
    cluster.stop(2)  # now validator 3's vote is needed for every quorum
    h = cluster.send(1, _transfer("bob", 0, to="alice"))
    cluster.wait_included(h)
    cluster.assert_same_chain()


def test_lossy_delivery_keeps_safety_and_recovers(cluster: Cluster) -> None:
    cluster.wire.faults(drop=0.2, duplicate=0.2, delay_s=(0.0, 0.05))
    hashes = [cluster.send(i % 4, _from_user(i)) for i in range(6)]
    time.sleep(2.0)
    cluster.wire.faults(drop=0.0, duplicate=0.0, delay_s=(0.0, 0.0))
    for h in hashes:
        cluster.wait_included(h)
    cluster.assert_same_chain()


def test_blocks_with_too_few_or_forged_seals_are_refused_by_a_syncing_node(cluster: Cluster) -> None:
    h = cluster.send(0, _transfer("alice", 0))
    cluster.wait_included(h)
    number = cluster.nodes[0].node.store.transaction(h).block_number  # type: ignore[union-attr]
    good = cluster.nodes[0].node.store.block_by_number(number)
    assert good is not None
    raws = cluster.nodes[0].node.store.raws_of(number)
    fresh_key = key_of("validator-4")
    fresh = Node(cluster.tmp / "fresh", cluster.genesis, fresh_key, workers=0, consensus=True)
    syncer = NetworkNode(fresh, cluster.wire.transport(address_of(fresh_key) + "x"), fresh_key)
    try:
        for n in range(1, number):  # bring the fresh node to the block's parent
            block = cluster.nodes[0].node.store.block_by_number(n)
            assert block is not None
            syncer.import_block(encode_block(block, cluster.nodes[0].node.store.raws_of(n)))
        too_few = replace(good, seals=good.seals[:2])
        forged = replace(good, seals=(good.seals[0],) * len(good.seals))
        for bad in (too_few, forged):
            with pytest.raises(ConsensusError):
                syncer.import_block(encode_block(bad, raws))
            assert fresh.tip.number == number - 1
        syncer.import_block(encode_block(good, raws))
        assert fresh.tip.hash == good.hash
    finally:
        fresh.close()


def test_validator_added_and_removed_through_the_registry(cluster: Cluster) -> None:
    ta, new = key_of("ta"), key_of("validator-4")
    deployed = cluster.send(0, tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000, chain_id=4242))
    cluster.wait_included(deployed)
    registry = str(cluster.genesis.registry)
    added = cluster.send(0, tx(ta, 1, registry, calldata("addValidator", address_of(new)), chain_id=4242))
    cluster.wait_included(added)
    at = cluster.nodes[0].node.store.transaction(added).block_number  # type: ignore[union-attr]
    for d in cluster.nodes.values():
        _until(lambda d=d: d.node.head.number >= at, what="the block that adds a validator")
        block = d.node.store.block_by_number(at)
        assert block is not None and address_of(new) in block.header.validators
    cluster.start(4)  # the new validator joins and its vote counts from height at + 1
    removed = cluster.send(1, tx(ta, 2, registry, calldata("removeMember", address_of(new)), chain_id=4242))
    cluster.wait_included(removed)
    at = cluster.nodes[0].node.store.transaction(removed).block_number  # type: ignore[union-attr]
    for d in cluster.nodes.values():
        _until(lambda d=d: d.node.head.number >= at, what="the block that removes it")
        block = d.node.store.block_by_number(at)
        assert block is not None and address_of(new) not in block.header.validators
    cluster.assert_same_chain()


def test_hostile_peer_frames_are_refused_and_change_nothing(cluster: Cluster) -> None:
    """Garbage, a non-validator's votes, far-future and replayed messages, bad sync answers."""
    from coincurve import PrivateKey

    from node.consensus.messages import Commit, Prepare, encode, sign
    from node.network import FRAME_CONSENSUS, FRAME_HEAD, FRAME_TRANSACTIONS

    h = cluster.send(0, _from_user(0))
    cluster.wait_included(h)
    rogue_key = key_of("rogue")
    rogue = cluster.wire.transport(address_of(rogue_key))
    answers: list[bytes] = []
    rogue.start(lambda _s, _f: None, lambda _s, data: answers.append(data) or b"")
    _until(lambda: len(rogue.connected()) == 4, what="the rogue to join")
    head = cluster.nodes[0].node.head
    height = head.number + 1
    key = PrivateKey(rogue_key)
    frames = [
        b"",
        bytes([FRAME_CONSENSUS]) + b"\xff" * 100,  # not a message
        bytes([FRAME_CONSENSUS]) + encode(sign(Prepare(height, 0, bytes(32)), key)),  # not a validator
        bytes([FRAME_CONSENSUS]) + encode(sign(Commit(height, 0, bytes(32), bytes(65)), key)),
        bytes([FRAME_CONSENSUS]) + encode(sign(Prepare(height + 10**6, 0, bytes(32)), key)),  # far future
        bytes([FRAME_TRANSACTIONS]) + b"\xc1\xff",  # malformed transaction list
        bytes([FRAME_TRANSACTIONS]) + __import__("rlp").encode([b"\x02junk"]),  # a bad transaction
        bytes([FRAME_HEAD]) + (2**63).to_bytes(8, "big"),  # claims a far head: sync finds nothing
        bytes([99]) + b"unknown kind",
    ]
    for frame in frames:
        rogue.broadcast(frame)
    time.sleep(1.0)
    for d in cluster.nodes.values():
        assert d.node.head.hash == head.hash  # nothing changed
    assert sum(sum(d.refused.values()) for d in cluster.nodes.values()) > 0
    h = cluster.send(1, _from_user(1))  # and the chain goes on
    cluster.wait_included(h)
    cluster.assert_same_chain()
    rogue.close()


def test_broken_links_are_bridged(cluster: Cluster) -> None:
    """Validators 0-1 and 2-3 cannot reach each other directly: relays and sync bridge them."""
    a = [address_of(k) for k in cluster.keys[:4]]
    for x, y in ((0, 1), (1, 0), (2, 3), (3, 2)):
        cluster.wire.link(a[x], a[y], drop=1.0)
    hashes = [cluster.send(i % 4, _from_user(i)) for i in range(6)]
    for h in hashes:
        cluster.wait_included(h)
    _until(lambda: len(set(cluster.heads().values())) == 1, what="every node at one head")
    cluster.assert_same_chain()


def test_an_equivocating_proposer_gets_at_most_one_block_final(cluster: Cluster) -> None:
    """The proposer of the next height signs two different valid blocks and sends one to two
    validators and the other to the third, then votes for both: one block at most is final."""
    from coincurve import PrivateKey

    from node.consensus.messages import Commit, Prepare, Proposal, encode, sign
    from node.consensus.quorum import proposer_of
    from node.network import FRAME_CONSENSUS

    h = cluster.send(0, _from_user(0))
    cluster.wait_included(h)
    _until(lambda: len(set(cluster.heads().values())) == 1, what="one head")
    source = cluster.nodes[0].node
    height = source.tip.number + 1
    addresses = [address_of(k) for k in cluster.keys[:4]]
    bad = addresses.index(proposer_of(cluster.genesis.validators, height, 0))
    bad_key = cluster.keys[bad]
    cluster.stop(bad)
    # a copy of the chain to build the two blocks on
    scratch = Node(cluster.tmp / "scratch", cluster.genesis, bad_key, workers=0, consensus=True)
    builder = NetworkNode(scratch, cluster.wire.transport("0x" + "ee" * 20), bad_key)
    for n in range(1, height):
        block = source.store.block_by_number(n)
        assert block is not None
        builder.import_block(encode_block(block, source.store.raws_of(n)))
    blocks = []
    for i in (1, 2):
        scratch.submit(_from_user(i))
        with scratch._cond:
            batch = [p for p in scratch.take() if p.raw == _from_user(i)]
        with scratch._engine_lock:
            built = scratch.build(scratch.tip, batch, PrivateKey(bad_key), 0, undoable=True)
            scratch.undo()
        blocks.append(built.block)
        with scratch._cond:
            scratch._mempool.clear()
    key = PrivateKey(bad_key)
    rogue = cluster.wire.transport(addresses[bad])
    try:
        rogue.start(lambda _s, _f: None, lambda _s, _d: b"")
        _until(lambda: len(rogue.connected()) >= 3, what="the rogue to join")
        honest = [i for i in range(4) if i != bad]

        def frame(payload: Proposal | Prepare | Commit) -> bytes:
            return bytes([FRAME_CONSENSUS]) + encode(sign(payload, key))

        wires = [encode_block(b, [_from_user(i + 1)]) for i, b in enumerate(blocks)]
        for j, peer in enumerate(honest):
            rogue.send(addresses[peer], frame(Proposal(height, 0, wires[0 if j < 2 else 1])))
        for b in blocks:
            digest = b.header.seal_digest
            rogue.broadcast(frame(Prepare(height, 0, digest)))
            rogue.broadcast(frame(Commit(height, 0, digest, key.sign_recoverable(digest, hasher=None))))
        _until(lambda: all(cluster.nodes[i].node.head.number >= height for i in honest), what="the height to end")
        final = {cluster.nodes[i].node.store.block_by_number(height).hash for i in honest}  # type: ignore[union-attr]
        assert len(final) == 1  # safety: one block at the height on every honest node
        assert blocks[1].hash not in final  # the block only one honest validator saw never gets a quorum
        h = cluster.send(honest[0], _from_user(3))  # the three honest validators go on
        cluster.wait_included(h, honest)
        cluster.assert_same_chain()
    finally:
        rogue.close()
        scratch.close()
