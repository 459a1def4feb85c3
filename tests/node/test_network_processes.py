"""A validator network of real ``qkdchain node`` processes, QBFT over libp2p on loopback.

What ``test_network`` checks in one process with an in-memory wire, checked again with
separate OS processes, real libp2p hosts and ``kill -9``: identical chains, a follower
that forwards transactions, a validator lost (f = 1), two lost (no progress, no fork),
and a killed validator that restarts, syncs and votes again. Timers are generous: a
loaded CI machine must not cause spurious failures.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from node.client.chain import RpcChain
from node.launcher import LocalNetwork, plan_network

pytestmark = pytest.mark.slow
WAIT_S = 90.0


def _until(predicate: Callable[[], bool], timeout_s: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    specs = plan_network(tmp_path, validators=4, followers=1)
    with LocalNetwork(tmp_path, specs, round_timeout_s=1.0).up() as net:
        yield net


def _w3(net: LocalNetwork, name: str) -> Web3:
    return Web3(HTTPProvider(net.urls()[name], request_kwargs={"timeout": 30}))


def _heads(net: LocalNetwork, names: list[str]) -> dict[str, int]:
    return {n: _w3(net, n).eth.block_number for n in names}


def _assert_same_chain(net: LocalNetwork, names: list[str]) -> None:
    top = min(_heads(net, names).values())
    for number in range(top + 1):
        hashes = {bytes(_w3(net, n).eth.get_block(number)["hash"]) for n in names}
        assert len(hashes) == 1, f"nodes disagree at height {number}"


def _pay(net: LocalNetwork, via: str, to: str, wei: int = 1) -> None:
    RpcChain(net.urls()[via]).fund(to, wei)  # waits for the receipt: the block is final


def test_validators_agree_and_a_follower_forwards(network: LocalNetwork) -> None:
    names = [s.name for s in network.specs]
    assert {n: _w3(network, n).net.peer_count for n in names} == dict.fromkeys(names, len(names) - 1)  # up() waited
    for i, via in enumerate(["validator-0", "validator-2", "follower-0", "validator-3"]):
        # a client reads its nonce from the node it sends through: let that node see the last block
        _until(lambda via=via: _heads(network, [via])[via] >= max(_heads(network, names).values()), what=via)
        _pay(network, via, "0x" + f"{i + 1:02x}" * 20)
    _until(lambda: len(set(_heads(network, names).values())) == 1, what="every node at one head")
    _assert_same_chain(network, names)
    block = _w3(network, "follower-0").eth.get_block("latest")
    assert len(block["commitSeals"]) >= 3 and block["validators"] == sorted(block["validators"])


def test_validators_lost_then_one_restarted(network: LocalNetwork) -> None:
    network.kill("validator-3")  # f = 1: the chain goes on
    _pay(network, "validator-0", "0x" + "aa" * 20)
    _pay(network, "validator-1", "0x" + "ab" * 20)
    network.kill("validator-2")  # two of four: no quorum
    _until(lambda: _w3(network, "validator-0").net.peer_count == 2, what="validator-0 to see two links drop")
    before = _heads(network, ["validator-0", "validator-1"])
    chain = RpcChain(network.urls()["validator-0"])
    signed = chain.faucet.sign_transaction(
        {
            "to": Web3.to_checksum_address("0x" + "ac" * 20),
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "nonce": chain.w3.eth.get_transaction_count(chain.faucet.address, "pending"),
            "chainId": chain.chain_id,
            "type": 2,
        }
    )
    sent = chain.w3.eth.send_raw_transaction(signed.raw_transaction)  # admitted; cannot be final yet
    time.sleep(6.0)  # several round timers
    assert _heads(network, ["validator-0", "validator-1"]) == before  # nothing final, nothing forked
    network.start("validator-3")  # back after blocks it missed: sync, then its vote makes the quorum
    network.wait_ready("validator-3")
    receipt = _w3(network, "validator-0").eth.wait_for_transaction_receipt(sent, timeout=WAIT_S)
    assert receipt["status"] == 1
    alive = ["validator-0", "validator-1", "validator-3", "follower-0"]
    _until(lambda: len(set(_heads(network, alive).values())) == 1, what="validator-3 to catch up")
    _assert_same_chain(network, alive)


def test_bench_network_json(tmp_path: Path) -> None:
    """``qkdchain bench network`` as a user runs it: the solo node and a 4-validator network."""
    from typer.testing import CliRunner

    from qkdchain.cli import app

    args = ["bench", "network", "--json", "--validators", "1,4", "--loads", "40", "--seconds", "1",
            "--vehicles", "4", "--out", str(tmp_path)]  # fmt: skip
    before = set(Path(tempfile.gettempdir()).glob("qkdchain-bench-net-*"))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert set(Path(tempfile.gettempdir()).glob("qkdchain-bench-net-*")) <= before  # its network's files are gone
    report = json.loads(result.stdout)
    assert [r["validators"] for r in report["results"]] == [1, 4]
    for r in report["results"]:
        keys = {"validators", "offered_tps", "tps", "latency_ms", "transactions", "refusals", "rss_mb", "blocks", "cpu"}
        assert set(r) == keys
        assert r["offered_tps"] == 40 and r["transactions"] == 40 and r["refusals"] == 0 and r["tps"] > 0
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
        assert 1 <= r["blocks"] <= 40  # no empty blocks
        cpu = r["cpu"]
        assert cpu["cores"] > 0 and cpu["ms_per_block"] > 0 and cpu["us_per_tx"] > 0
        assert cpu["ms_per_block"] * r["blocks"] == pytest.approx(cpu["us_per_tx"] * 40 / 1000, rel=0.02)
    solo, network = report["results"]
    assert network["rss_mb"] > solo["rss_mb"]  # four node processes against one
    assert network["cpu"]["ms_per_block"] > solo["cpu"]["ms_per_block"]  # four execute each block, and vote
    assert json.loads((tmp_path / "bench_network.json").read_text())["results"] == report["results"]
    assert (tmp_path / "bench_network.png").read_bytes()[:4] == b"\x89PNG"


def test_process_tree_finds_grandchildren() -> None:
    """The network benchmark's CPU figures count each node's store and recovery processes."""
    import subprocess
    import sys

    from node.longrun import process_tree

    sleeper = "import time; time.sleep(30)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {sleeper!r}]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while len(process_tree(child.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = process_tree(child.pid)
        assert tree[0] == child.pid and len(tree) == 2
        grandchild = tree[1]
        assert Path(f"/proc/{grandchild}/cmdline").read_bytes().endswith(b"time.sleep(30)\x00")
    finally:
        for pid in process_tree(child.pid)[1:]:
            os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()


def test_an_owner_that_exits_without_down_takes_its_nodes_along(tmp_path: Path) -> None:
    """A benchmark or test that fails half-way leaves no node running; `network up` does."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from node.launcher import LocalNetwork, plan_network\n"
        "d = Path(sys.argv[1]); net = LocalNetwork(d, plan_network(d, 1), detached=sys.argv[2] == '1').up()\n"
        "print(' '.join(str(p.pid) for p in net.processes.values()), flush=True)\n"
        "raise SystemExit(3)  # no down()\n"
    )
    for detached in (False, True):
        directory = tmp_path / f"detached-{detached}"
        directory.mkdir()
        done = subprocess.run([sys.executable, "-c", code, str(directory), str(int(detached))],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 3, done.stderr
        (pid,) = [int(x) for x in done.stdout.split()]
        try:
            if detached:  # `qkdchain network up`: the node outlives the command
                time.sleep(1)
                os.kill(pid, 0)
            else:
                _until(functools.partial(_gone, pid), 30, "the node to stop")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (the owner that would reap it has exited)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True
