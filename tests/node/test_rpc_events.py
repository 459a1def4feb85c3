"""Filters, WebSocket subscriptions, pending and dropped transactions, reads beside execution,
and who may create contracts: over a real server on loopback, against a permissioned node."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_utils.crypto import keccak
from websockets.sync.client import connect

from contracts import load_artifact
from node.engine.base import EngineError
from node.server import RpcServer
from tests.node.conftest import Setup, address_of, calldata, tx

MEMBER_ADDED = "0x" + keccak(text="MemberAdded(address,uint8)").hex()


@pytest.fixture
def served(setup: Setup) -> Iterator[tuple[Setup, RpcServer]]:
    with RpcServer(setup.node, port=0) as server:
        yield setup, server


def call(server: RpcServer, method: str, *params: Any) -> Any:
    answer = requests.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=30).json()  # fmt: skip
    if "error" in answer:
        raise AssertionError(answer["error"])
    return answer["result"]


def error_of(server: RpcServer, method: str, *params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = requests.post(server.url, json=body, timeout=30).json()
    assert "error" in answer, answer
    return dict(answer["error"])


def test_http_filters_see_blocks_logs_and_pending_transactions(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    blocks = call(server, "eth_newBlockFilter")
    logs = call(server, "eth_newFilter", {"address": setup.registry, "topics": [MEMBER_ADDED]})
    pending = call(server, "eth_newPendingTransactionFilter")
    assert call(server, "eth_getFilterChanges", blocks) == []
    newcomer = address_of(setup.vehicles[2])
    sent = setup.node.submit(tx(setup.ta, 3, setup.registry, calldata("addVehicle", newcomer)))
    included = setup.node.wait(sent)
    assert call(server, "eth_getFilterChanges", pending) == ["0x" + sent.hex()]
    assert call(server, "eth_getFilterChanges", blocks) == ["0x" + included.block_hash.hex()]
    changes = call(server, "eth_getFilterChanges", logs)
    assert [c["transactionHash"] for c in changes] == ["0x" + sent.hex()]
    assert changes[0]["topics"][1] == "0x" + "00" * 12 + newcomer[2:]
    assert call(server, "eth_getFilterChanges", logs) == []  # polled: emptied
    everything = call(server, "eth_getFilterLogs", logs)  # from the filter's start: the new member only
    assert [e["transactionHash"] for e in everything] == ["0x" + sent.hex()]
    from_genesis = call(server, "eth_newFilter", {"fromBlock": "0x0", "address": setup.registry,
                                                  "topics": [MEMBER_ADDED]})  # fmt: skip
    assert len(call(server, "eth_getFilterLogs", from_genesis)) == 3  # two vehicles in the fixture, one here
    assert call(server, "eth_uninstallFilter", logs) is True
    assert call(server, "eth_uninstallFilter", logs) is False
    assert "not found" in error_of(server, "eth_getFilterChanges", logs)["message"]


def test_websocket_subscriptions_push_heads_logs_and_pending(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    with connect(server.ws_url, open_timeout=10) as ws:

        def ask(method: str, *params: Any) -> Any:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": list(params)}))
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message.get("id") == 9:
                    return message

        heads = ask("eth_subscribe", "newHeads")["result"]
        logs = ask("eth_subscribe", "logs", {"address": setup.registry, "topics": [MEMBER_ADDED]})["result"]
        pending = ask("eth_subscribe", "newPendingTransactions")["result"]
        assert ask("eth_chainId")["result"] == hex(setup.node.chain_id)  # ordinary calls work on the socket
        sent = setup.node.submit(tx(setup.ta, 3, setup.registry, calldata("addVehicle", address_of(setup.vehicles[2]))))
        included = setup.node.wait(sent)
        seen: dict[str, list[Any]] = {heads: [], logs: [], pending: []}
        while not all(seen.values()):
            message = json.loads(ws.recv(timeout=10))
            assert message["method"] == "eth_subscription"
            seen[message["params"]["subscription"]].append(message["params"]["result"])
        assert seen[pending] == ["0x" + sent.hex()]
        assert seen[heads][0]["hash"] == "0x" + included.block_hash.hex() and "transactions" not in seen[heads][0]
        assert seen[logs][0]["transactionHash"] == "0x" + sent.hex()
        assert ask("eth_unsubscribe", heads)["result"] is True
        assert ask("eth_unsubscribe", heads)["result"] is False
        bad = ask("eth_subscribe", "everything")
        assert bad["error"]["code"] == -32602
    assert server.events.sizes == (0, 0)  # the closed connection took its subscriptions with it
    assert error_of(server, "eth_subscribe", "newHeads")["code"] == -32601  # HTTP cannot carry them


def test_a_pending_transaction_is_visible_and_a_dropped_one_says_why(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    vehicle = setup.vehicles[0]
    balance = setup.node.read(lambda e: e.balance(address_of(vehicle)))
    fee = 21_000 * 2 * 10**9
    with setup.node._engine_lock:  # the proposer cannot build until both wait in the mempool
        spend_all = setup.node.submit(tx(vehicle, 0, address_of(setup.ta), b"", 21_000,
                                         value=balance - fee))  # fmt: skip
        doomed = setup.node.submit(tx(vehicle, 1, address_of(setup.ta), b"", 21_000))  # admitted on the old balance
        shown = call(server, "eth_getTransactionByHash", "0x" + doomed.hex())
        assert shown["hash"] == "0x" + doomed.hex() and shown["blockNumber"] is None and shown["blockHash"] is None
        assert call(server, "eth_getTransactionReceipt", "0x" + doomed.hex()) is None
    setup.node.wait(spend_all)
    with pytest.raises(EngineError, match="wei for gas"):
        setup.node.wait(doomed)
    for method in ("eth_getTransactionReceipt", "eth_getTransactionByHash"):
        error = error_of(server, method, "0x" + doomed.hex())
        assert error["code"] == -32000 and "dropped before inclusion" in error["message"]
        assert error["data"]["error"] == "TransactionDropped"


def test_reads_answer_while_a_block_is_being_executed(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    answers: list[Any] = []
    with setup.node._engine_lock:  # as if the proposer were executing a long block
        reader = threading.Thread(target=lambda: answers.extend([
            call(server, "eth_getBalance", address_of(setup.ta), "latest"),
            call(server, "eth_call", {"to": setup.registry, "data": "0x" + calldata("admin").hex()}),
        ]))  # fmt: skip
        reader.start()
        reader.join(timeout=30)
        assert not reader.is_alive()
    assert int(answers[0], 16) > 0 and answers[1][-40:] == address_of(setup.ta)[2:]


def test_only_the_admin_and_genesis_deployers_create_contracts(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    member = setup.vehicles[0]  # may write to the registry, may not deploy
    raw = tx(member, 0, None, load_artifact().bytecode, gas=2_000_000)
    error = error_of(server, "eth_sendRawTransaction", "0x" + raw.hex())
    assert error["code"] == -32007 and error["data"] == {"error": "ContractCreationNotPermitted"}
    assert call(server, "eth_getTransactionCount", address_of(member), "latest") == "0x0"
    deployed = setup.node.wait(setup.node.submit(tx(setup.ta, 3, None, load_artifact().bytecode, gas=2_000_000)))
    assert deployed.status == 1


def test_a_nonce_gap_waits_in_the_queue_until_it_is_filled(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    ta = address_of(setup.ta)
    later = tx(setup.ta, 4, setup.registry, calldata("addVehicle", address_of(setup.vehicles[2])))
    queued = call(server, "eth_sendRawTransaction", "0x" + later.hex())
    shown = call(server, "eth_getTransactionByHash", queued)
    assert shown["blockNumber"] is None and shown["nonce"] == "0x4"
    assert call(server, "eth_getTransactionCount", ta, "pending") == "0x3"  # the gap is not pending yet
    too_far = tx(setup.ta, 3 + 65, setup.registry, calldata("admin"))
    assert "nonce too high" in error_of(server, "eth_sendRawTransaction", "0x" + too_far.hex())["message"]
    assert "already known" in error_of(server, "eth_sendRawTransaction", "0x" + later.hex())["message"]
    filler = setup.node.submit(tx(setup.ta, 3, setup.registry, calldata("admin")))
    assert setup.node.wait(filler).status == 1
    assert setup.node.wait(bytes.fromhex(queued[2:])).status == 1
    assert call(server, "eth_getTransactionCount", ta, "latest") == "0x5"


def test_block_transaction_counts_indexes_and_receipts(served: tuple[Setup, RpcServer]) -> None:
    setup, server = served
    included = setup.node.wait(setup.node.submit(tx(setup.ta, 3, setup.registry, calldata("admin"))))
    number, block_hash = hex(included.block_number), "0x" + included.block_hash.hex()
    assert call(server, "eth_getBlockTransactionCountByNumber", number) == "0x1"
    assert call(server, "eth_getBlockTransactionCountByHash", block_hash) == "0x1"
    by_number = call(server, "eth_getTransactionByBlockNumberAndIndex", number, "0x0")
    assert by_number == call(server, "eth_getTransactionByBlockHashAndIndex", block_hash, "0x0")
    assert by_number["hash"] == "0x" + included.tx_hash.hex()
    assert call(server, "eth_getTransactionByBlockNumberAndIndex", number, "0x1") is None
    receipts = call(server, "eth_getBlockReceipts", number)
    assert [r["transactionHash"] for r in receipts] == [by_number["hash"]]
    assert call(server, "eth_getBlockReceipts", hex(10**6)) is None
    assert call(server, "eth_getUncleCountByBlockNumber", number) == "0x0"
    assert call(server, "eth_getUncleByBlockHashAndIndex", block_hash, "0x0") is None


def test_web3_py_subscriptions_over_websocket(served: tuple[Setup, RpcServer]) -> None:
    """web3.py's own WebSocket provider: subscribe to heads and registry logs, receive both."""
    from web3 import AsyncWeb3, WebSocketProvider

    setup, server = served

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncWeb3(WebSocketProvider(server.ws_url)) as w3:
            assert await w3.eth.chain_id == setup.node.chain_id
            heads = await w3.eth.subscribe("newHeads")
            logs = await w3.eth.subscribe("logs", {"address": setup.registry, "topics": [MEMBER_ADDED]})
            submit = asyncio.get_running_loop().run_in_executor(
                None, setup.node.submit, tx(setup.ta, 3, setup.registry,
                                            calldata("addVehicle", address_of(setup.vehicles[2]))))  # fmt: skip
            await submit
            got: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(20):
                async for message in w3.socket.process_subscriptions():
                    got.setdefault(message["subscription"], dict(message["result"]))
                    if len(got) == 2:
                        break
            assert await w3.eth.unsubscribe(heads) is True
            return got[heads], got[logs]

    head, found = asyncio.run(run())
    assert int(str(head["number"]), 0) >= 1 and found["address"].lower() == setup.registry.lower()
