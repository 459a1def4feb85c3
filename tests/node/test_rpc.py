"""The node's JSON-RPC through web3.py's HTTPProvider and raw HTTP: methods, batches, errors, fuzz."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.exceptions import ContractLogicError

from node.client.chain import NodeChain
from node.client.registry import KeyRegistry


@pytest.fixture(scope="module")
def chain() -> Iterator[NodeChain]:
    chain = NodeChain()
    yield chain
    chain.close()


@pytest.fixture(scope="module")
def deployed(chain: NodeChain) -> KeyRegistry:
    ta = Account.from_key(keccak(text="rpc-test:ta"))
    chain.fund(ta.address, 10**20)
    return KeyRegistry.deploy(chain.w3, ta)


def _post(chain: NodeChain, body: Any, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    response = requests.post(chain.url, data=data, headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200
    return response.json() if response.content else None


def test_web3_reads_everything(chain: NodeChain, deployed: KeyRegistry) -> None:
    w3 = chain.w3
    assert w3.eth.chain_id == 1337 and w3.net.version == "1337" and w3.net.peer_count == 0
    assert w3.client_version.startswith("qkdchain/")
    vehicle = Account.from_key(keccak(text="rpc-test:v"))
    result = deployed.add_vehicle(vehicle.address)
    receipt = w3.eth.get_transaction_receipt(result.tx_hash)
    assert receipt["status"] == 1 and receipt["gasUsed"] == result.gas_used
    tx = w3.eth.get_transaction(result.tx_hash)
    assert tx["from"] == deployed.signer.address and tx["to"] == deployed.address
    assert tx["blockNumber"] == receipt["blockNumber"] and tx["hash"] == receipt["transactionHash"]
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["transactions"][0]["hash"] == receipt["transactionHash"]
    assert w3.eth.get_block(block["hash"])["number"] == block["number"]
    assert w3.eth.get_block(block["number"] - 1)["hash"] == block["parentHash"]
    assert w3.eth.block_number >= block["number"]
    assert w3.eth.get_code(deployed.address) == HexBytes(deployed.artifact.deployed_bytecode)
    admin_word = w3.eth.get_storage_at(deployed.address, 0)
    assert admin_word[-20:] == HexBytes(deployed.signer.address)
    assert w3.eth.get_transaction_count(deployed.signer.address) == 2  # deploy, addVehicle
    assert w3.eth.get_balance(vehicle.address) == 0
    assert w3.eth.gas_price > 0 and w3.eth.max_priority_fee > 0
    history = w3.eth.fee_history(3, "latest", [50])
    assert len(history["baseFeePerGas"]) == 4 and len(history["reward"]) == 3
    logs = w3.eth.get_logs({"fromBlock": 0, "address": deployed.address})
    added = keccak(text="MemberAdded(address,uint8)")
    assert any(log["topics"][0] == added for log in logs)
    topic_filtered = w3.eth.get_logs({"fromBlock": 0, "topics": [added]})
    assert topic_filtered and all(log["topics"][0] == added for log in topic_filtered)
    by_hash = w3.eth.get_logs({"blockHash": block["hash"]})
    assert [log["transactionHash"] for log in by_hash] == [receipt["transactionHash"]]


def test_call_and_estimate_revert_with_data(chain: NodeChain, deployed: KeyRegistry) -> None:
    outsider = Account.from_key(keccak(text="rpc-test:outsider"))
    data = deployed.encode("addVehicle", outsider.address)
    call = {"from": outsider.address, "to": deployed.address, "data": data}
    with pytest.raises(ContractLogicError) as exc:
        chain.w3.eth.call(call)  # type: ignore[arg-type]
    assert HexBytes(exc.value.data)[:4] == keccak(text="NotAdmin(address)")[:4]  # type: ignore[arg-type]
    with pytest.raises(ContractLogicError):
        chain.w3.eth.estimate_gas(call)  # type: ignore[arg-type]
    ok = {"from": deployed.signer.address, "to": deployed.address, "data": data}
    assert chain.w3.eth.estimate_gas(ok) >= 21_000  # type: ignore[arg-type]


def test_batch_and_standard_errors(chain: NodeChain) -> None:
    answers = _post(
        chain,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"},
            {"jsonrpc": "2.0", "id": 2, "method": "no_such_method"},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x1234"]},
            {"jsonrpc": "2.0", "id": 4, "method": "eth_sendRawTransaction", "params": ["0x02c0"]},
            {"id": 5, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "method": "eth_chainId"},  # a notification: no answer
        ],
    )
    by_id = {a["id"]: a for a in answers}
    assert len(answers) == 5
    assert by_id[1]["result"].startswith("0x")
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["error"]["code"] == -32602
    assert by_id[4]["error"]["code"] == -32602 and by_id[4]["error"]["data"]["error"] == "MalformedTransaction"
    assert by_id[5]["error"]["code"] == -32600
    assert _post(chain, None, raw=b"{not json")["error"]["code"] == -32700
    assert _post(chain, [])["error"]["code"] == -32600
    assert _post(chain, {"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"})["result"] == "0x539"


def test_a_future_block_has_no_state(chain: NodeChain, deployed: KeyRegistry) -> None:
    future = hex(chain.w3.eth.block_number + 1_000)
    answer = _post(chain, {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x" + "00" * 20, future]})
    assert answer["error"] == {"code": -32000, "message": "header not found"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(["0x", "0x00", "latest"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
METHODS = st.sampled_from(
    [
        "eth_getBalance",
        "eth_call",
        "eth_estimateGas",
        "eth_getLogs",
        "eth_sendRawTransaction",
        "eth_getBlockByNumber",
        "eth_getTransactionReceipt",
        "eth_feeHistory",
        "eth_getStorageAt",
        "evm_increaseTime",
        "nope",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=64),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda m, p, i: json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}).encode(),
            METHODS,
            JSON_VALUES,
            st.integers(0, 5),
        ),
    )
)
def test_fuzzed_bodies_get_answers_and_change_nothing(chain: NodeChain, body: bytes) -> None:
    handler = chain.server.handler
    head = chain.node.head.hash
    answer = handler.handle(body)
    if answer is not None:
        decoded = json.loads(answer)
        for item in decoded if isinstance(decoded, list) else [decoded]:
            assert ("result" in item) != ("error" in item)
            if "error" in item:
                assert item["error"]["code"] != -32603, item  # never an internal error
    assert chain.node.head.hash == head or b"evm_increaseTime" in body


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=1, max_size=300))
def test_fuzzed_raw_transactions_are_refused(chain: NodeChain, raw: bytes) -> None:
    head, pending = chain.node.head.hash, chain.node.mempool_size
    answer = json.loads(
        chain.server.handler.handle(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
            ).encode()
        )
        or b"{}"
    )
    assert "error" in answer and answer["error"]["code"] != -32603
    assert (chain.node.head.hash, chain.node.mempool_size) == (head, pending)


def test_web3_sends_through_the_node(chain: NodeChain) -> None:
    sender = Account.from_key(keccak(text="rpc-test:sender"))
    chain.fund(sender.address, 10**18)
    w3 = chain.w3
    signed = sender.sign_transaction(
        {
            "chainId": 1337,
            "nonce": 0,
            "to": Web3.to_checksum_address("0x" + "22" * 20),
            "value": 1234,
            "gas": 21_000,
            "maxFeePerGas": 3 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert w3.eth.get_balance(Web3.to_checksum_address("0x" + "22" * 20)) == 1234
    with pytest.raises(Exception, match="nonce too low"):
        w3.eth.send_raw_transaction(signed.raw_transaction)


def test_a_batch_of_raw_transactions_is_admitted_together(chain: NodeChain) -> None:
    from node.txcodec import sign_eip1559

    key = keccak(text="rpc-test:batcher")
    sender = Account.from_key(key)
    chain.fund(sender.address, 10**18)
    raws = [sign_eip1559(key, 1337, n, "0x" + "33" * 20, b"", 21_000, 3 * 10**9, 10**9, value=1) for n in range(3)]
    params = ["0x" + raws[0].hex(), "0x02c0", "0x" + raws[1].hex(), "0x" + raws[0].hex(), "0x" + raws[2].hex()]
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [p]} for i, p in enumerate(params)
    ]
    answers = {a["id"]: a for a in _post(chain, batch)}
    assert answers[1]["error"]["data"]["error"] == "MalformedTransaction"
    assert answers[3]["error"]["data"]["error"] == "AlreadyKnown"
    hashes = [answers[i]["result"] for i in (0, 2, 4)]
    last = chain.node.wait(bytes.fromhex(hashes[-1][2:]))
    assert last.status == 1
    assert chain.w3.eth.get_balance(Web3.to_checksum_address("0x" + "33" * 20)) == 3
