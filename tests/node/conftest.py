"""A permissioned in-process node with a deployed registry, and transaction helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from contracts import load_artifact
from node.admission import GWEI, Genesis
from node.client.registry import KeyRegistry
from node.core import Node
from node.txcodec import sign_eip1559

CHAIN_ID = 4242
VALIDATOR_KEY = keccak(text="test validator")
_ABI = KeyRegistry(Web3(), "0x" + "00" * 20)


def key_of(label: str) -> bytes:
    return keccak(text=f"node-test:{label}")


def address_of(key: bytes) -> str:
    return str(Account.from_key(key).address).lower()


def calldata(fn: str, *args: object) -> bytes:
    converted = [Web3.to_checksum_address(a) if isinstance(a, str) and len(a) == 42 else a for a in args]
    return bytes.fromhex(_ABI.encode(fn, *converted)[2:])


def tx(key: bytes, nonce: int, to: str | None, data: bytes = b"", gas: int = 300_000, **kw: Any) -> bytes:
    return sign_eip1559(key, kw.pop("chain_id", CHAIN_ID), nonce, to, data, gas, 2 * GWEI, GWEI, **kw)


@dataclass
class Setup:
    node: Node
    data_dir: Path
    genesis: Genesis
    ta: bytes
    registry: str
    vehicles: list[bytes]

    def send(self, raw: bytes) -> object:
        return self.node.wait(self.node.submit(raw))


def make_genesis(ta: bytes, others: list[bytes]) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        alloc={address_of(k): 10**21 for k in [ta, *others]},
        admin=address_of(ta),
        permissioned=True,
        timestamp=1_700_000_000,
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """TA deployed the registry (the allow list) and added two vehicles; a third account is an outsider."""
    ta = key_of("ta")
    vehicles = [key_of(f"v{i}") for i in range(3)]
    genesis = make_genesis(ta, vehicles)
    node = Node(tmp_path, genesis, VALIDATOR_KEY, workers=0)
    try:
        deployed = node.wait(node.submit(tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000)))
        assert deployed.contract_address == genesis.registry
        for i, v in enumerate(vehicles[:2]):
            node.wait(node.submit(tx(ta, i + 1, genesis.registry, calldata("addVehicle", address_of(v)))))
        yield Setup(node, tmp_path, genesis, ta, str(genesis.registry), vehicles)
    finally:
        node.close()
