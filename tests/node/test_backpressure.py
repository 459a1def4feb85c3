"""Back-pressure: the mempool holds what the node drains in its target wait; beyond that a
client's transaction is refused at once (NodeOverloaded, -32005), changes nothing, and
goes through when offered again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from node.backpressure import BackpressureConfig, DrainMeter, NodeOverloaded
from node.core import Node
from node.launcher import NodeProcess
from node.txcodec import TransactionRejected
from tests.node.conftest import VALIDATOR_KEY, address_of, key_of, make_genesis, tx


def test_an_idle_node_measures_nothing_and_bounds_at_the_floor() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=0.5, floor=10, ceiling=1_000))
    for i in range(5):  # each take emptied the mempool: the gaps are arrival gaps, not work
        meter.taken(3, float(i), backlog_left=False)
    assert meter.rate == 0.0
    assert meter.limit() == 10


def test_the_rate_is_measured_while_a_backlog_lasts() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=0.5, floor=10, ceiling=900))
    meter.taken(100, 0.0, backlog_left=True)
    meter.taken(100, 0.1, backlog_left=True)  # 100 drained in 0.1 s
    assert meter.rate == pytest.approx(1_000)
    assert meter.limit() == 500
    for i in range(2, 60):  # the node slows to 200 per 0.1 s: the estimate follows
        meter.taken(200, i * 0.1, backlog_left=True)
    assert meter.rate == pytest.approx(2_000, rel=0.01)
    assert meter.limit() == 900  # the ceiling
    meter.taken(1, 6.0, backlog_left=False)
    meter.taken(1, 60.0, backlog_left=True)  # after an idle stretch: no sample
    assert meter.rate == pytest.approx(2_000, rel=0.01)


def test_a_refusal_names_the_backlog_and_when_to_retry() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=0.25, floor=10, ceiling=1_000))
    assert meter.refusal(10).retry_after_ms == 250  # no rate yet: one target wait
    meter.taken(400, 0.0, backlog_left=True)
    meter.taken(400, 1.0, backlog_left=True)
    refusal = meter.refusal(100)
    assert isinstance(refusal, TransactionRejected) and refusal.rpc_code == -32005
    assert refusal.limit == 100 and refusal.backlog == 100
    assert refusal.retry_after_ms == 125  # half the bound drains at 400/s
    assert "limit exceeded" in str(refusal) and "retry in 125 ms" in str(refusal)


@pytest.mark.parametrize(
    ("wait", "floor", "ceiling"), [(-1.0, 10, 100), (float("nan"), 10, 100), (0.1, 0, 100), (0.1, 200, 100)]
)
def test_nonsense_settings_are_refused(wait: float, floor: int, ceiling: int) -> None:
    with pytest.raises(ValueError):
        BackpressureConfig(target_wait_s=wait, floor=floor, ceiling=ceiling)


def _wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_stalled_node_refuses_beyond_its_bound_and_admits_the_rest_later(tmp_path: Path) -> None:
    ta = key_of("ta")
    node = Node(tmp_path, make_genesis(ta, []), VALIDATOR_KEY, workers=0,
                backpressure=BackpressureConfig(target_wait_s=0.0, floor=5))  # fmt: skip
    sink = "0x" + "ee" * 20
    raws = [tx(ta, n, sink, value=1, gas=21_000) for n in range(20)]
    try:
        with node._engine_lock:  # execution stalls: whatever is admitted stays queued
            first = node.submit_many(raws)
            assert all(isinstance(r, bytes) for r in first[:5])
            assert all(isinstance(r, NodeOverloaded) for r in first[5:])
            assert isinstance(first[5], NodeOverloaded) and first[5].rpc_code == -32005
            _wait_for(lambda: node.mempool_size == 0)  # the proposer took the 5 and waits for the engine
            assert node.backlog == 5  # in a block being built: still the node's backlog
            # refused before decoding: garbage past the bound is not even looked at
            second = node.submit_many([*raws[5:], b"\x02garbage"])
            assert all(isinstance(r, NodeOverloaded) for r in second)
            with pytest.raises(NodeOverloaded):
                node.submit(raws[5])
            assert node.pending_nonce(address_of(ta)) == 5
        node.wait(first[4])  # type: ignore[arg-type]
        _wait_for(lambda: node.backlog == 0)
        for raw in raws[5:]:  # offered again once the backlog drained: admitted in order
            node.wait(node.submit(raw))
        assert node.engine.account(address_of(ta)).nonce == 20
        assert node.engine.balance(sink) == 20
    finally:
        node.close()


def test_peer_gossip_is_not_refused_by_back_pressure(tmp_path: Path) -> None:
    ta = key_of("ta")
    node = Node(tmp_path, make_genesis(ta, []), VALIDATOR_KEY, workers=0,
                backpressure=BackpressureConfig(target_wait_s=0.0, floor=1))  # fmt: skip
    raws = [tx(ta, n, "0x" + "ee" * 20, value=1, gas=21_000) for n in range(5)]
    try:
        with node._engine_lock:
            results = node.submit_many(raws, announce=False)  # a peer's: its origin admitted them
        assert all(isinstance(r, bytes) for r in results)
        node.wait(results[-1])  # type: ignore[arg-type]
    finally:
        node.close()


def test_a_node_process_answers_minus_32005_and_admits_on_retry(tmp_path: Path) -> None:
    ta = key_of("ta")
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(make_genesis(ta, []).to_json()))
    args = ("--genesis", str(genesis_file), "--workers", "0", "--min-backlog", "1", "--backlog-wait-ms", "0")
    raws = [tx(ta, n, "0x" + "ee" * 20, value=1, gas=21_000) for n in range(10)]

    def send(batch: list[bytes]) -> list[dict[str, object]]:
        body = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
            for i, r in enumerate(batch)
        ]
        answered: list[dict[str, object]] = requests.post(running.url, json=body, timeout=10).json()
        return sorted(answered, key=lambda a: int(a["id"]))  # type: ignore[call-overload]

    def receipt(tx_hash: object) -> object:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [tx_hash]}
        return requests.post(running.url, json=body, timeout=10).json()["result"]

    with NodeProcess(tmp_path / "node", args, {"QKDCHAIN_VALIDATOR_KEY": VALIDATOR_KEY.hex()}) as running:
        answers = send(raws)
        assert "result" in answers[0]
        for refused in answers[1:]:
            error = refused["error"]
            assert isinstance(error, dict) and error["code"] == -32005
            assert error["data"]["error"] == "NodeOverloaded" and error["data"]["retryAfterMs"] >= 1
        _wait_for(lambda: receipt(answers[0]["result"]) is not None)
        for raw in raws[1:]:  # a client that honours the refusal: one at a time, after each drains
            answer = send([raw])[0]
            assert "result" in answer, answer
            _wait_for(lambda: receipt(answer["result"]) is not None)  # noqa: B023
        count = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount", "params": [address_of(ta), "latest"]}
        assert requests.post(running.url, json=count, timeout=10).json()["result"] == "0xa"
