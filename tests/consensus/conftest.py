"""Four validators with fixed keys, stub blocks, and helpers that sign messages as any of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest
from coincurve import PrivateKey

from node.consensus.messages import Commit, Payload, Prepare, RoundChange, Signed, SignedMessage, decode, encode, sign
from node.consensus.qbft import Action, Broadcast, QbftConfig, QbftMachine
from node.consensus.sim import StubBlocks
from node.hashing import address_of_public, keccak

HEIGHT = 1


@dataclass
class Net:
    """Keys and addresses of validators 0..3 (plus an outsider, 4), and block helpers."""

    keys: list[PrivateKey]
    addresses: list[str]
    ops: StubBlocks

    def validators(self, height: int) -> list[str]:
        return self.addresses[:4]

    def machine(self, node: int, height: int = HEIGHT) -> QbftMachine:
        return QbftMachine(self.keys[node].secret, self.ops, self.validators, height, QbftConfig(base_timeout=1.0))

    def proposer(self, height: int, round: int) -> int:
        return (height + round) % 4

    def block(self, round: int = 0, height: int = HEIGHT, payload: bytes = b"txs", by: int | None = None) -> bytes:
        builder = self.proposer(height, round) if by is None else by
        return self.ops.make(height, round, self.addresses[builder], payload)

    def signed(self, node: int, payload: Payload) -> SignedMessage:
        return cast(SignedMessage, sign(payload, self.keys[node]))

    def wire(self, node: int, payload: Payload) -> bytes:
        return encode(self.signed(node, payload))

    def prepares(self, nodes: list[int], round: int, block: bytes) -> tuple[Signed[Prepare], ...]:
        digest = self.ops.digest(block)
        return tuple(sign(Prepare(block_height(self, block), round, digest), self.keys[i]) for i in nodes)

    def commit(self, node: int, round: int, block: bytes) -> bytes:
        digest = self.ops.digest(block)
        seal = self.keys[node].sign_recoverable(digest, hasher=None)
        return encode(sign(Commit(block_height(self, block), round, digest, seal), self.keys[node]))

    def round_change(
        self, node: int, round: int, prepared: tuple[int, bytes, tuple[Signed[Prepare], ...]] | None = None
    ) -> Signed[RoundChange]:
        if prepared is None:
            return sign(RoundChange(HEIGHT, round), self.keys[node])
        prepared_round, block, prepares = prepared
        change = RoundChange(HEIGHT, round, prepared_round, self.ops.digest(block), block, prepares)
        return sign(change, self.keys[node])


def block_height(net: Net, block: bytes) -> int:
    return net.ops.height(block)


def broadcasts(actions: list[Action]) -> list[SignedMessage]:
    """The decoded messages among ``actions``."""
    return [decode(a.data) for a in actions if isinstance(a, Broadcast)]


@pytest.fixture
def net() -> Net:
    keys = [PrivateKey(keccak(f"consensus-test-{i}".encode())) for i in range(5)]
    return Net(keys, [address_of_public(k.public_key) for k in keys], StubBlocks())
