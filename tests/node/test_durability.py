"""Nothing acknowledged is lost: clean restarts and ``kill -9`` under load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from contracts import load_artifact
from node.client.anvil import free_port
from node.core import GenesisMismatch, Node
from tests.node.conftest import (
    CHAIN_ID,
    VALIDATOR_KEY,
    Setup,
    address_of,
    calldata,
    key_of,
    make_genesis,
    tx,
)


def test_restart_resumes_state_blocks_and_receipts(setup: Setup) -> None:
    vehicle = setup.vehicles[0]
    included = setup.send(
        tx(
            vehicle,
            0,
            setup.registry,
            calldata("commitKey", b"\x05" * 32, address_of(setup.vehicles[1]), b"\x06" * 32, 512, 60),
        )
    )
    head, registry_slot = setup.node.head, setup.node.engine.storage(setup.registry, 0)
    accounts = [setup.node.engine.account(address_of(k)) for k in [setup.ta, *setup.vehicles]]
    setup.node.close()
    with Node(setup.data_dir, None, VALIDATOR_KEY, workers=0) as again:
        assert again.head == head
        assert again.store.transaction(included.tx_hash) == included  # type: ignore[attr-defined]
        assert again.engine.storage(setup.registry, 0) == registry_slot
        assert [again.engine.account(address_of(k)) for k in [setup.ta, *setup.vehicles]] == accounts
        assert again.engine.code(setup.registry) == load_artifact().deployed_bytecode
        # the chain continues where it stopped, and a resumed node executes like the first
        more = again.wait(
            again.submit(tx(setup.ta, 3, setup.registry, calldata("addVehicle", address_of(key_of("n")))))
        )
        assert more.block_number == head.number + 1 and more.status == 1
        assert again.store.block_by_number(more.block_number).header.parent_hash == head.hash  # type: ignore[union-attr]


def test_another_genesis_is_refused(setup: Setup) -> None:
    setup.node.close()
    with pytest.raises(GenesisMismatch):
        Node(setup.data_dir, make_genesis(key_of("someone else"), []), VALIDATOR_KEY, workers=0)


def _rpc(url: str, method: str, params: list[object]) -> object:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return requests.post(url, json=body, timeout=10).json()


def _start(data_dir: Path, genesis_file: Path, port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, QKDCHAIN_VALIDATOR_KEY=VALIDATOR_KEY.hex())
    stderr = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "qkdchain.cli", "node", "--data-dir", str(data_dir), "--port", str(port),
         "--genesis", str(genesis_file), "--workers", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _rpc(url, "eth_blockNumber", [])
            return process
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the node did not start")


def test_node_process_logs_json_lines_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ta = key_of("ta")
    genesis = make_genesis(ta, [])
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(genesis.to_json()))
    port, log = free_port(), tmp_path / "node.log"
    url = f"http://127.0.0.1:{port}"
    node = _start(tmp_path / "data", genesis_file, port, log)
    try:
        sent = _rpc(url, "eth_sendRawTransaction", ["0x" + tx(ta, 0, None, load_artifact().bytecode, 2_000_000).hex()])
        for _ in range(200):
            if _rpc(url, "eth_getTransactionReceipt", [sent["result"]])["result"]:  # type: ignore[index]
                break
            time.sleep(0.02)
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=60) == 0
    finally:
        node.kill()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    messages = [e["msg"] for e in entries]
    assert messages[-1] == "stopping" and "node started" in messages
    sealed = [e for e in entries if e["msg"] == "sealed block"]
    assert sealed and sealed[0]["block"] == 1 and sealed[0]["txs"] == 1
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)


def test_kill_9_under_load_keeps_every_acknowledged_transaction(tmp_path: Path) -> None:
    ta, vehicles = key_of("ta"), [key_of(f"k{i}") for i in range(8)]
    genesis = make_genesis(ta, vehicles)
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(genesis.to_json()))
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    node = _start(data_dir, genesis_file, port)
    acknowledged: dict[str, dict[str, object]] = {}
    stop = threading.Event()
    try:
        _rpc(url, "eth_sendRawTransaction", ["0x" + tx(ta, 0, None, load_artifact().bytecode, gas=2_000_000).hex()])
        registry = str(genesis.registry)

        def load() -> None:
            nonce = 1
            while not stop.is_set():
                raws = [
                    tx(ta, nonce + i, registry, calldata("addVehicle", address_of(key_of(f"m{nonce + i}"))))
                    for i in range(20)
                ]
                batch = [
                    {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
                    for i, raw in enumerate(raws)
                ]
                try:
                    answers = requests.post(url, json=batch, timeout=10).json()
                    hashes = [a["result"] for a in answers if "result" in a]
                    nonce += len(hashes)
                    receipts = requests.post(
                        url,
                        json=[
                            {"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt", "params": [h]}
                            for i, h in enumerate(hashes)
                        ],
                        timeout=10,
                    ).json()
                    for answer in receipts:
                        if answer.get("result"):
                            acknowledged[answer["result"]["transactionHash"]] = answer["result"]
                except (requests.RequestException, ValueError):
                    return  # the node is gone

        loader = threading.Thread(target=load)
        loader.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        node.send_signal(signal.SIGKILL)
        node.wait()
        stop.set()
        loader.join()
        assert len(acknowledged) >= 200
        node = _start(data_dir, genesis_file, port)
        head = int(str(_rpc(url, "eth_blockNumber", [])["result"]), 16)  # type: ignore[index]
        for tx_hash, before in acknowledged.items():
            after = _rpc(url, "eth_getTransactionReceipt", [tx_hash])["result"]  # type: ignore[index]
            assert after == before
            assert int(str(before["blockNumber"]), 16) <= head
        # it continues: the TA's next nonce is accepted and sealed on top of the head
        nonce = int(str(_rpc(url, "eth_getTransactionCount", ["0x" + address_of(ta)[2:], "pending"])["result"]), 16)  # type: ignore[index]
        sent = _rpc(url, "eth_sendRawTransaction", ["0x" + tx(ta, nonce, registry, calldata("admin")).hex()])
        tx_hash = sent["result"]  # type: ignore[index]
        for _ in range(100):
            receipt = _rpc(url, "eth_getTransactionReceipt", [tx_hash])["result"]  # type: ignore[index]
            if receipt:
                assert int(receipt["blockNumber"], 16) == head + 1
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no receipt after restart")
        assert int(str(_rpc(url, "eth_chainId", [])["result"]), 16) == CHAIN_ID  # type: ignore[index]
    finally:
        stop.set()
        node.kill()
        node.wait()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    from node.store import Store, StoreError

    (tmp_path / "chain.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable node database"):
        Store(tmp_path / "chain.sqlite")


def test_genesis_round_trips_and_refuses_nonsense() -> None:
    from node.admission import Genesis

    genesis = make_genesis(key_of("ta"), [key_of("v")])
    assert Genesis.from_json(genesis.to_json()) == genesis
    with pytest.raises(ValueError, match="invalid genesis"):
        Genesis.from_json({"chainId": "many", "alloc": {}})
    with pytest.raises(ValueError, match="invalid genesis"):
        Genesis.from_json({"alloc": ["not", "a", "map"]})


def test_node_command_refuses_a_bad_genesis_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qkdchain.cli import app

    bad = tmp_path / "genesis.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(app, ["node", "--data-dir", str(tmp_path / "d"), "--genesis", str(bad), "--port", "0"])
    assert result.exit_code == 2
    assert "--genesis" in result.output
