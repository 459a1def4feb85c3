"""Back-pressure: the mempool holds what the node drains in its target wait; beyond that a
client's transaction is refused at once (NodeOverloaded, -32005), changes nothing, and
goes through when offered again."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    meter.taken(100, 0.1, backlog_left=True)  # 100 drained in the 0.1 s before
    assert meter.rate == pytest.approx(1_000)
    assert meter.limit() == 500
    for i in range(2, 60):  # the node speeds up to 200 per 0.1 s: the estimate follows
        meter.taken(200, i * 0.1, backlog_left=True)
    assert meter.rate == pytest.approx(2_000, rel=0.01)
    assert meter.limit() == 900  # the ceiling
    meter.taken(200, 6.0, backlog_left=False)
    meter.taken(1, 60.0, backlog_left=True)  # the interval after an idle moment: no sample
    assert meter.rate == pytest.approx(2_000, rel=0.01)


def test_a_drain_is_paired_with_the_interval_that_ends_at_it() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=1.0, floor=1, ceiling=10**6))
    meter.taken(5_000, 0.0, backlog_left=True)  # a big group, then small ones: 2,000/s throughout
    meter.taken(200, 0.1, backlog_left=True)
    assert meter.rate == pytest.approx(2_000)


def test_the_bound_is_never_below_one_full_block() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=0.25, floor=10, ceiling=5_000))
    assert meter.limit(block_capacity=1_428) == 1_428  # 21,000-gas transfers in a 30 M block
    assert meter.limit(block_capacity=10**6) == 5_000  # the ceiling still holds


def test_a_refusal_names_the_backlog_and_when_to_retry() -> None:
    meter = DrainMeter(BackpressureConfig(target_wait_s=0.25, floor=10, ceiling=1_000))
    assert meter.refusal(10, 10).retry_after_ms == 50  # no rate yet: a fifth of the target wait
    meter.taken(400, 0.0, backlog_left=True)
    meter.taken(400, 1.0, backlog_left=True)
    refusal = meter.refusal(100, meter.limit())
    assert isinstance(refusal, TransactionRejected) and refusal.rpc_code == -32005
    assert refusal.limit == 100 and refusal.backlog == 100
    assert refusal.retry_after_ms == 63  # a quarter of the bound drains at 400/s
    assert "limit exceeded" in str(refusal) and "retry in 63 ms" in str(refusal)


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


def _stalled_node(tmp_path: Path, floor: int) -> Node:
    """An open chain (any funded account sends) whose backlog bound is ``floor``."""
    genesis = replace(make_genesis(key_of("ta"), [key_of(f"s{i}") for i in range(8)]), permissioned=False)
    config = BackpressureConfig(target_wait_s=0.0, floor=floor, ceiling=floor)
    return Node(tmp_path, genesis, VALIDATOR_KEY, workers=0, backpressure=config)


def test_a_stalled_node_refuses_past_its_bound_and_admits_the_rest_later(tmp_path: Path) -> None:
    ta = key_of("ta")
    node = _stalled_node(tmp_path, floor=5)
    sink = "0x" + "ee" * 20
    raws = [tx(ta, n, sink, value=1, gas=21_000) for n in range(20)]
    try:
        with node._engine_lock:  # execution stalls: whatever is admitted stays in the backlog
            first = node.submit_many(raws[:8])  # under the bound when it came: taken whole
            assert all(isinstance(r, bytes) for r in first)
            assert node.backlog == 8  # in the mempool or a block being built: the node's backlog
            # refused whole, before decoding: garbage past the bound is not even looked at
            second = node.submit_many([*raws[8:], b"\x02garbage"])
            assert all(isinstance(r, NodeOverloaded) and r.rpc_code == -32005 for r in second)
            with pytest.raises(NodeOverloaded):
                node.submit(raws[8])
            assert node.pending_nonce(address_of(ta)) == 8
        node.wait(first[-1])  # type: ignore[arg-type]
        _wait_for(lambda: node.backlog == 0)
        for raw in raws[8:]:  # offered again once the backlog drained: admitted in order
            node.wait(node.submit(raw))
        assert node.engine.account(address_of(ta)).nonce == 20
        assert node.engine.balance(sink) == 20
    finally:
        node.close()


def test_concurrent_batches_pass_the_bound_by_one_batch_at_most(tmp_path: Path) -> None:
    node = _stalled_node(tmp_path, floor=5)
    senders = [key_of(f"s{i}") for i in range(8)]
    batches = [[tx(k, n, "0x" + "ee" * 20, value=1, gas=21_000) for n in range(1, 11)] for k in senders]
    results: list[list[object]] = [[] for _ in senders]

    def send(i: int) -> None:
        results[i] = list(node.submit_many(batches[i]))

    try:
        for k in senders:  # each sender known to the node (its account and permission cached)
            node.wait(node.submit(tx(k, 0, "0x" + "ee" * 20, value=1, gas=21_000)))
        with node._engine_lock:  # the threads' admission never needs it: only execution stalls
            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(senders))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            taken = [r for r in results if all(isinstance(x, bytes) for x in r)]
            refused = [r for r in results if all(isinstance(x, NodeOverloaded) for x in r)]
            assert len(taken) == 1 and len(refused) == len(senders) - 1  # each batch whole, one in
            assert node.backlog == 10
    finally:
        node.close()


def test_a_busy_node_measures_its_drain_rate_with_cheap_transactions(tmp_path: Path) -> None:
    """Blocks of transfers hold far more than the floor: the rate is measured all the same."""
    node = _stalled_node(tmp_path, floor=256)
    node.drain.config = BackpressureConfig(target_wait_s=0.25, floor=256)
    senders = [key_of(f"s{i}") for i in range(8)]
    try:
        with node._engine_lock:  # a backlog builds while the first block waits for the engine
            results = node.submit_many([tx(k, n, "0x" + "ee" * 20, value=1, gas=21_000)
                                        for n in range(50) for k in senders])  # fmt: skip
            results += node.submit_many([tx(k, n, "0x" + "ee" * 20, value=1, gas=21_000)
                                         for n in range(50, 100) for k in senders])  # fmt: skip
        assert all(isinstance(r, bytes) for r in results)  # under one block's worth: no refusal
        node.wait(results[-1])  # type: ignore[arg-type]
        assert node.drain.rate > 0
        assert node.backlog_limit() >= 4 * (30_000_000 // 21_000)  # the pipeline's full blocks of them
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
    genesis = replace(make_genesis(ta, []), block_gas_limit=42_000)  # two transfers a block: a slow drain
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(genesis.to_json()))
    args = ("--genesis", str(genesis_file), "--workers", "0", "--min-backlog", "1", "--backlog-wait-ms", "0")
    raws = [tx(ta, n, "0x" + "ee" * 20, value=1, gas=21_000) for n in range(200)]

    def send(batch: list[bytes]) -> list[dict[str, Any]]:
        body = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
                for i, r in enumerate(batch)]  # fmt: skip
        answers: list[dict[str, Any]] = requests.post(running.url, json=body, timeout=10).json()
        return sorted(answers, key=lambda a: int(a["id"]))

    def nonce() -> int:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount", "params": [address_of(ta), "latest"]}
        return int(requests.post(running.url, json=body, timeout=10).json()["result"], 16)

    with NodeProcess(tmp_path / "node", args, {"QKDCHAIN_VALIDATOR_KEY": VALIDATOR_KEY.hex()}) as running:
        refusals = 0
        for start in range(0, len(raws), 40):  # each batch right after the last: 20 blocks still to commit
            batch = raws[start : start + 40]
            while True:
                answers = send(batch)
                if all("result" in a for a in answers):
                    break
                assert all("error" in a for a in answers), "a batch is taken or refused whole"
                for a in answers:
                    assert a["error"]["code"] == -32005 and a["error"]["data"]["error"] == "NodeOverloaded"
                refusals += 1
                time.sleep(answers[0]["error"]["data"]["retryAfterMs"] / 1000)  # as asked, then again
        assert refusals > 0
        _wait_for(lambda: nonce() == len(raws), timeout_s=60)  # nothing lost, nothing doubled
