"""Reads at older blocks: every state method at every kept block gives what it gave when that
block was the head, through a real server; a limited history refuses what it pruned, by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contracts import load_artifact
from node import store
from node.core import Node
from node.engine.base import AccessListEntry
from node.server import RpcServer
from tests.node.conftest import VALIDATOR_KEY, address_of, calldata, key_of, make_genesis, tx


def rpc(server: RpcServer, method: str, *params: Any) -> Any:
    answer = requests.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=30).json()  # fmt: skip
    if "error" in answer:
        raise AssertionError(answer["error"])
    return answer["result"]


def snapshot(server: RpcServer, registry: str, people: list[str], tag: Any) -> dict[str, Any]:
    """Everything the state methods say at ``tag``."""
    seen: dict[str, Any] = {}
    for who in [*people, registry]:
        seen[f"balance {who}"] = rpc(server, "eth_getBalance", who, tag)
        seen[f"nonce {who}"] = rpc(server, "eth_getTransactionCount", who, tag)
        seen[f"code {who}"] = rpc(server, "eth_getCode", who, tag)
    for slot in range(4):
        seen[f"slot {slot}"] = rpc(server, "eth_getStorageAt", registry, hex(slot), tag)
    if seen[f"code {registry}"] != "0x":
        for who in people:
            data = "0x" + calldata("canWrite", who).hex()
            seen[f"canWrite {who}"] = rpc(server, "eth_call", {"to": registry, "data": data}, tag)
        seen["admin gas"] = rpc(
            server, "eth_estimateGas", {"to": registry, "data": "0x" + calldata("admin").hex()}, tag
        )
    return seen


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[Node, RpcServer, list[bytes]]]:
    ta = key_of("ta")
    vehicles = [key_of(f"hist{i}") for i in range(3)]
    node = Node(tmp_path, make_genesis(ta, vehicles), VALIDATOR_KEY, workers=0, history_blocks=8)
    try:
        with RpcServer(node, port=0) as server:
            yield node, server, [ta, *vehicles]
    finally:
        node.close()


def test_every_state_method_at_every_block(chain: tuple[Node, RpcServer, list[bytes]]) -> None:
    node, server, (ta, *vehicles) = chain
    people = [address_of(k) for k in (ta, *vehicles)]
    registry = str(node.genesis.registry)
    seen = {0: snapshot(server, registry, people, "latest")}
    sends = [tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000)]
    sends += [tx(ta, 1 + i, registry, calldata("addVehicle", address_of(v))) for i, v in enumerate(vehicles)]
    sends += [tx(vehicles[0], 0, people[2], b"", 21_000, value=10**18)]
    sends += [tx(ta, 4, registry, calldata("removeMember", address_of(vehicles[1])))]
    for raw in sends:  # one block each, and what every method says once it is the head
        included = node.wait(node.submit(raw))
        assert included.block_number == len(seen)
        seen[included.block_number] = snapshot(server, registry, people, "latest")
    for number, expected in seen.items():
        assert snapshot(server, registry, people, hex(number)) == expected, number
        block_hash = rpc(server, "eth_getBlockByNumber", hex(number), False)["hash"]
        assert snapshot(server, registry, people, {"blockHash": block_hash}) == expected
    assert snapshot(server, registry, people, "earliest") == seen[0]
    assert seen[0][f"code {registry}"] == "0x" and seen[1][f"code {registry}"] != "0x"


def test_a_limited_history_refuses_what_it_pruned(chain: tuple[Node, RpcServer, list[bytes]]) -> None:
    node, server, (ta, *_) = chain
    ta_address = address_of(ta)
    balances = {0: rpc(server, "eth_getBalance", ta_address, "latest")}
    for nonce in range(store.PRUNE_EVERY + 3):  # past the first pruning, at block 128
        included = node.wait(node.submit(tx(ta, nonce, ta_address, b"", 21_000, value=1)))
        balances[included.block_number] = rpc(server, "eth_getBalance", ta_address, "latest")
    first = store.PRUNE_EVERY - 8
    assert node.store.history_from() == first
    for number in range(first, max(balances) + 1):
        assert rpc(server, "eth_getBalance", ta_address, hex(number)) == balances[number]
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [ta_address, hex(first - 1)]}
    error = requests.post(server.url, json=body, timeout=30).json()["error"]
    assert error["code"] == -32000 and error["data"] == {"error": "StateNotKept", "first": hex(first)}
    assert "--history-blocks" in error["message"]


def test_eth_call_state_overrides_hold_for_the_call_only(chain: tuple[Node, RpcServer, list[bytes]]) -> None:
    node, server, (ta, *_) = chain
    registry = str(node.genesis.registry)
    node.wait(node.submit(tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000)))
    somewhere = "0x" + "ab" * 20
    slot0 = "0x" + "00" * 32
    sload0 = "0x600054600052602060" + "00f3"  # return storage slot 0
    own_balance = "0x4760005260206000f3"  # return SELFBALANCE
    word = "0x" + "00" * 31 + "42"
    overrides = {somewhere: {"code": sload0, "stateDiff": {slot0: word}}}
    assert rpc(server, "eth_call", {"to": somewhere}, "latest", overrides) == word
    rich = {somewhere: {"code": own_balance, "balance": hex(10**30)}}
    assert int(rpc(server, "eth_call", {"to": somewhere}, "latest", rich), 16) == 10**30
    admin = {"to": registry, "data": "0x" + calldata("admin").hex()}
    assert int(rpc(server, "eth_call", admin, "latest"), 16) == int(address_of(ta), 16)
    assert int(rpc(server, "eth_call", admin, "latest", {registry: {"state": {}}}), 16) == 0  # storage wiped
    assert int(rpc(server, "eth_call", admin, "0x0", {registry: {"code": sload0}}), 16) == 0  # at genesis too
    assert rpc(server, "eth_getCode", somewhere, "latest") == "0x"  # nothing stayed
    assert rpc(server, "eth_getBalance", somewhere, "latest") == "0x0"
    assert int(rpc(server, "eth_call", admin, "latest"), 16) == int(address_of(ta), 16)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call",
            "params": [admin, "latest", {registry: {"state": {}, "stateDiff": {}}}]}  # fmt: skip
    assert requests.post(server.url, json=body, timeout=30).json()["error"]["code"] == -32602
    # an override that fails halfway leaves nothing behind
    bad = {somewhere: {"balance": "0x1234", "code": own_balance}, registry: {"nonce": hex(2**64)}}
    body["params"] = [{"to": somewhere}, "latest", bad]
    assert requests.post(server.url, json=body, timeout=30).json()["error"]["code"] == -32602
    assert rpc(server, "eth_getBalance", somewhere, "latest") == "0x0"
    assert rpc(server, "eth_call", {"to": somewhere}, "latest") == "0x"


def test_create_access_list_lists_what_a_call_touches(chain: tuple[Node, RpcServer, list[bytes]]) -> None:
    node, server, (ta, v0, *_) = chain
    registry = str(node.genesis.registry)
    node.wait(node.submit(tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000)))
    add = {"from": address_of(ta), "to": registry, "data": "0x" + calldata("addVehicle", address_of(v0)).hex()}
    made = rpc(server, "eth_createAccessList", add, "latest")
    assert [e["address"] for e in made["accessList"]] == [registry]  # the sender is warm already: left out
    assert made["accessList"][0]["storageKeys"]  # the admin slot and the member's slot
    plain = int(rpc(server, "eth_estimateGas", add, "latest"), 16)
    with_list = int(rpc(server, "eth_estimateGas", {**add, "accessList": made["accessList"]}, "latest"), 16)
    assert int(made["gasUsed"], 16) <= with_list and with_list != plain  # the list is charged and warms
    keys = tuple(int(k, 16) for k in made["accessList"][0]["storageKeys"])
    signed = tx(ta, 1, registry, calldata("addVehicle", address_of(v0)), access_list=(AccessListEntry(registry, keys),))
    included = node.wait(node.submit(signed))
    assert included.status == 1 and included.gas_used == int(made["gasUsed"], 16)
    shown = rpc(server, "eth_getTransactionByHash", "0x" + included.tx_hash.hex())
    assert shown["type"] == "0x2" and shown["accessList"] == made["accessList"]
