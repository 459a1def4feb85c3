"""debug_traceTransaction and debug_traceCall against anvil's, step for step.

The same signed transactions (a registry deployment, a role change, a reverting call) go
to anvil and to our node; both traces must agree on every step's pc, opcode, gas, gas cost,
depth and stack, and the callTracer's top frames on everything they carry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_account import Account

from contracts import load_artifact
from node.client.anvil import AnvilProcess
from node.client.chain import NodeChain
from node.devkeys import DEV_FAUCET_KEY
from node.errors import ChainUnavailable
from node.txcodec import sign_eip1559
from tests.node.conftest import calldata

pytestmark = pytest.mark.anvil
KEY = bytes.fromhex(DEV_FAUCET_KEY[2:])
STEP = ("pc", "op", "gas", "gasCost", "depth", "stack")


def rpc(url: str, method: str, *params: Any) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=60).json()  # fmt: skip
    if "error" in answer:
        raise AssertionError((method, answer["error"]))
    return answer["result"]


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    anvil = AnvilProcess(chain_id=1337, steps_tracing=True)
    try:
        anvil.start()
    except ChainUnavailable as exc:
        pytest.skip(str(exc))
    node = NodeChain()
    try:
        yield node.url, anvil.url
    finally:
        node.close()
        anvil.stop()


def _send_both(urls: tuple[str, str], nonce: int, to: str | None, data: bytes, gas: int) -> str:
    raw = "0x" + sign_eip1559(KEY, 1337, nonce, to, data, gas, 10 * 10**9, 10**9).hex()
    hashes = {rpc(url, "eth_sendRawTransaction", raw) for url in urls}
    assert len(hashes) == 1
    tx_hash = hashes.pop()
    for url in urls:
        deadline = time.monotonic() + 60  # a patience, not a measurement: the machine may be loaded
        while not rpc(url, "eth_getTransactionReceipt", tx_hash):
            if time.monotonic() > deadline:
                raise AssertionError(f"{tx_hash} not mined on {url}")
            if url != urls[0]:
                rpc(url, "evm_mine")
            time.sleep(0.005)
    return str(tx_hash)


def _steps(trace: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(int(s[k], 16) if k in ("gas", "gasCost") and isinstance(s[k], str) else s[k] for k in STEP)
            for s in trace["structLogs"]]  # fmt: skip


def test_traces_agree_with_anvil_step_for_step(urls: tuple[str, str]) -> None:
    node_url, _ = urls
    faucet = Account.from_key(KEY).address.lower()
    deploy = _send_both(urls, 0, None, load_artifact().bytecode, 2_000_000)
    registry = rpc(node_url, "eth_getTransactionReceipt", deploy)["contractAddress"]
    add = _send_both(urls, 1, registry, calldata("addVehicle", "0x" + "77" * 20), 300_000)
    refused = _send_both(urls, 2, registry, calldata("addVehicle", "0x" + "77" * 20), 300_000)  # already a member
    assert rpc(node_url, "eth_getTransactionReceipt", refused)["status"] == "0x0"
    for tx_hash in (add, refused):
        ours, theirs = (rpc(url, "debug_traceTransaction", tx_hash, {}) for url in urls)
        assert ours["failed"] == theirs["failed"] and ours["gas"] == theirs["gas"]
        assert ours["returnValue"].removeprefix("0x") == theirs["returnValue"].removeprefix("0x")
        assert len(ours["structLogs"]) > 50 and _steps(ours) == _steps(theirs)
        ours, theirs = (rpc(url, "debug_traceTransaction", tx_hash, {"tracer": "callTracer"}) for url in urls)
        for key in ("type", "from", "to", "gas", "gasUsed", "input", "output", "error"):
            assert ours.get(key) == theirs.get(key), (key, ours.get(key), theirs.get(key))
    call = {"from": faucet, "to": registry, "data": "0x" + calldata("roleOf", "0x" + "77" * 20).hex(), "gas": "0x30d40"}
    ours, theirs = (rpc(url, "debug_traceCall", call, "latest", {}) for url in urls)
    assert _steps(ours) == _steps(theirs) and ours["returnValue"].removeprefix("0x") == theirs[
        "returnValue"].removeprefix("0x")  # fmt: skip
    # the revert data of a mined failure, exactly, from the trace (receipts no longer carry it)
    frame = rpc(node_url, "debug_traceTransaction", refused, {"tracer": "callTracer"})
    assert frame["error"] == "execution reverted" and len(frame["output"]) > 10


def test_unknown_tracers_and_transactions_are_refused(urls: tuple[str, str]) -> None:
    node_url, _ = urls
    body = {"jsonrpc": "2.0", "id": 1, "method": "debug_traceTransaction", "params": ["0x" + "00" * 32]}
    assert requests.post(node_url, json=body, timeout=10).json()["error"]["message"] == "transaction not found"
    body["params"] = ["0x" + "00" * 32, {"tracer": "prestateTracer"}]
    assert requests.post(node_url, json=body, timeout=10).json()["error"]["code"] == -32602
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getProof", "params": ["0x" + "00" * 20, [], "latest"]}
    assert requests.post(node_url, json=body, timeout=10).json()["error"]["code"] == -32601
