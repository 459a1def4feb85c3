"""Node throughput benchmark: validated TPS and submission-to-receipt latency vs offered load.

Workload: a TA deploys the KeyRegistry and adds ``vehicles`` vehicles; then every
vehicle sends pre-signed ``commitKey`` transactions (EIP-1559, fixed gas, one fresh
session each), round-robin, at the offered rate. The same transactions run, in the
same process and run, on:

- ``eth-tester``: the py-evm reference, auto-mining, driven through web3 in process;
- ``node``: our node in process (``Node.submit_many``: parallel recovery, admission
  with permissioning, execution, a durable block, receipts readable);
- ``node-rpc``: our node as a ``qkdchain node`` process, sent JSON-RPC batches;
- ``anvil-rpc``: anvil, auto-mining, sent the same JSON-RPC batches.

A transaction's latency runs from the moment it is handed to the system to the
moment its receipt is readable (in process: the block's durable-commit callback;
over RPC: the first poll that sees its block, which bounds the true time from above).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
from coincurve import PrivateKey
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from contracts import load_artifact
from node.admission import GWEI, Genesis, contract_address
from node.backpressure import NodeOverloaded
from node.client.anvil import AnvilProcess, find_anvil, free_port
from node.client.chain import EthTesterChain, RpcChain
from node.core import Node, address_of, decode_chunk
from node.devkeys import DEV_VALIDATOR_KEY
from node.metrics import Percentiles
from node.txcodec import sign_eip1559

SYSTEMS = ("eth-tester", "node", "node-rpc", "anvil-rpc")
MAX_FEE = 10 * GWEI  # anvil's and eth-tester's base fees move; ours is fixed at 1 gwei
COMMIT_GAS = 200_000
TICK_S = 0.005
MAX_CHUNK = 500  # transactions handed over at once (a JSON-RPC batch)
OVERLOADED = -32005  # back-pressure: the client retries later

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. The defaults finish in under three minutes on two cores."""

    loads: tuple[int, ...] = (50, 1_000, 4_000, 16_000)
    seconds: float = 2.0  # offered duration of each point
    vehicles: int = 64
    systems: tuple[str, ...] = SYSTEMS
    caps: tuple[tuple[str, int], ...] = (
        ("eth-tester", 400),
        ("anvil-rpc", 600),
        ("node", 40_000),
        ("node-rpc", 40_000),
    )

    memory_transactions: int = 20_000  # the engine-only flat-memory run (0: skip)
    overload: float = 4.0  # then each system is offered this many times its measured peak (0: skip)

    def transactions(self, system: str, load: int) -> int:
        return max(1, min(int(load * self.seconds), dict(self.caps).get(system, 10**9)))


def _key(label: str) -> bytes:
    return keccak(text=f"qkdchain-bench:{label}")


def _sign_chunk(args: tuple[int, list[tuple[bytes, int, str | None, bytes, int]]]) -> list[bytes]:
    chain_id, items = args
    return [sign_eip1559(k, chain_id, n, to, data, gas, MAX_FEE, GWEI) for k, n, to, data, gas in items]


class Workload:
    """The TA's setup transactions and the vehicles' commitKey stream, signed in parallel."""

    def __init__(self, chain_id: int, vehicles: int, pool: ProcessPoolExecutor) -> None:
        self.chain_id = chain_id
        self.ta = _key("ta")
        self.vehicles = [_key(f"vehicle{i}") for i in range(vehicles)]
        self._addresses = [address_of_key(v) for v in self.vehicles]  # derived once: an EC multiplication each
        self.registry = contract_address(address_of_key(self.ta), 0)
        self._nonces = [0] * vehicles
        self._session = 0
        self._pool = pool

    def _sign(self, items: list[tuple[bytes, int, str | None, bytes, int]]) -> list[bytes]:
        size = max(1, -(-len(items) // 8))
        chunks = [(self.chain_id, items[i : i + size]) for i in range(0, len(items), size)]
        return [raw for part in self._pool.map(_sign_chunk, chunks) for raw in part]

    def setup(self) -> list[bytes]:
        items: list[tuple[bytes, int, str | None, bytes, int]] = [
            (self.ta, 0, None, load_artifact().bytecode, 2_000_000)
        ]
        for i, v in enumerate(self.vehicles):
            items.append((self.ta, i + 1, self.registry, _add_vehicle(address_of_key(v)), 100_000))
        return self._sign(items)

    def commits(self, count: int) -> list[bytes]:
        items: list[tuple[bytes, int, str | None, bytes, int]] = []
        for i in range(count):
            v = i % len(self.vehicles)
            peer = self._addresses[(v + 1) % len(self.vehicles)]
            self._session += 1
            data = _commit_key(keccak(text=f"bench-session:{self._session}"), peer)
            items.append((self.vehicles[v], self._nonces[v], self.registry, data, COMMIT_GAS))
            self._nonces[v] += 1
        return self._sign(items)

    @property
    def accounts(self) -> list[str]:
        return [address_of_key(k) for k in [self.ta, *self.vehicles]]


def address_of_key(key: bytes) -> str:
    return address_of(PrivateKey(key))


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _call(signature: str, *args: object) -> bytes:
    """Calldata for ``signature`` (eth-abi directly: web3's encoder costs more than signing)."""
    types = signature[signature.index("(") + 1 : -1].split(",")
    return _selector(signature) + encode(types, args)


def _add_vehicle(account: str) -> bytes:
    return _call("addVehicle(address)", account)


COMMIT_KEY = "commitKey(bytes32,address,bytes32,uint32,uint64)"
_COMMIT_SELECTOR = _selector(COMMIT_KEY)
_COMMIT_TAIL = (1024).to_bytes(32, "big") + (3600).to_bytes(32, "big")  # 1,024 key bits, valid an hour


def _commit_key(session: bytes, peer: str) -> bytes:
    """``commitKey`` calldata laid out by hand (static arguments only: 32-byte words in order),
    10x cheaper than eth-abi's encoder; a test checks it against eth-abi."""
    return _COMMIT_SELECTOR + session + bytes(12) + bytes.fromhex(peer[2:]) + keccak(session) + _COMMIT_TAIL


@dataclass(frozen=True)
class Measured:
    """One load point as a system ran it: each accepted transaction's latency (s), the time
    from the first hand-over to the last inclusion, and how many hand-overs were refused."""

    latencies: list[float]
    elapsed: float
    refusals: int = 0


class System(Protocol):
    name: str
    chain_id: int

    def prepare(self, accounts: list[str]) -> None: ...
    def run(self, raws: list[bytes], offered_tps: float) -> Measured: ...
    def rss_mb(self) -> float: ...
    def close(self) -> None: ...


def rss_of(pid: int | None = None) -> float:
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class Offer:
    """The client side of one load point: ``raws`` handed over at ``offered_tps`` in chunks.

    Transactions the system refuses with back-pressure (-32005) are handed over again first,
    once the wait it asked for has passed, as a well-behaved client retries; every refusal is
    counted. The chunk size adapts as TCP's window does: halved at each refusal, grown by a
    sixteenth of ``max_chunk`` after each chunk taken whole, so a client facing a full node
    does not resend hundreds of transactions to have most of them refused again. A
    transaction's latency runs from the hand-over that the system accepted."""

    def __init__(self, raws: list[bytes], offered_tps: float, max_chunk: int = MAX_CHUNK) -> None:
        self.raws, self.offered_tps, self.max_chunk = raws, offered_tps, max_chunk
        self.refusals = 0
        self._again: list[bytes] = []
        self._resume_at = 0.0
        self._window = max_chunk

    def refused(self, raws: list[bytes], retry_after_s: float) -> None:
        """``raws`` (in their order) were refused: offer them again after ``retry_after_s``."""
        self.refusals += len(raws)
        self._again = raws + self._again  # before the rest: a sender's nonces stay in order
        self._resume_at = time.perf_counter() + retry_after_s
        self._window = max(1, self._window // 2)

    def answered(self, chunk: list[bytes], answers: list[Any]) -> list[Any]:
        """The hashes of ``chunk``'s accepted transactions, in order; its refused ones (a
        :class:`NodeOverloaded`, or a JSON-RPC -32005 error object) are offered again after
        the longest wait asked for.

        Raises:
            RuntimeError: any other refusal: the benchmark's transactions are all valid.
        """
        accepted: list[Any] = []
        refused: list[bytes] = []
        retry_ms = 0
        for raw, answer in zip(chunk, answers, strict=True):
            if isinstance(answer, bytes | str):
                accepted.append(answer)
                continue
            if isinstance(answer, NodeOverloaded):
                retry_ms = max(retry_ms, answer.retry_after_ms)
            elif isinstance(answer, dict) and answer.get("code") == OVERLOADED:
                retry_ms = max(retry_ms, int((answer.get("data") or {}).get("retryAfterMs", 50)))
            else:
                raise RuntimeError(f"benchmark transaction refused: {answer}")
            refused.append(raw)
        if refused:
            self.refused(refused, retry_ms / 1000)
        return accepted

    def __iter__(self) -> Iterator[tuple[list[bytes], float]]:
        """Chunks at their scheduled times: (transactions handed over, time handed over)."""
        start = time.perf_counter()
        sent = 0
        while sent < len(self.raws) or self._again:
            now = time.perf_counter()
            if now < self._resume_at:
                time.sleep(min(TICK_S, self._resume_at - now))
                continue
            window = self._window
            again, self._again = self._again[:window], self._again[window:]
            due = min(len(self.raws), int((now - start) * self.offered_tps) + 1, sent + window - len(again))
            if again or due > sent:
                chunk = again + self.raws[sent:due] if due > sent else again
                sent = max(sent, due)
                refusals = self.refusals
                yield chunk, time.perf_counter()
                if self.refusals == refusals:  # taken whole: widen
                    self._window = min(self.max_chunk, self._window + max(1, self.max_chunk // 16))
            else:
                time.sleep(min(TICK_S, (sent + 1) / self.offered_tps - (now - start)))


class InProcessNode:
    """``node``: our node in this process; receipts observed by the durable-commit callback."""

    name = "node"

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id
        self.data_dir = Path(tempfile.mkdtemp(prefix="qkdchain-bench-node-"))
        self.node: Node | None = None

    def prepare(self, accounts: list[str]) -> None:
        genesis = Genesis(
            chain_id=self.chain_id,
            alloc={a: 10**24 for a in accounts},
            admin=accounts[0],
            permissioned=True,
            timestamp=int(time.time()),
        )
        self.node = Node(self.data_dir, genesis, DEV_VALIDATOR_KEY)

    def run(self, raws: list[bytes], offered_tps: float) -> Measured:
        node = self.node
        assert node is not None
        included: dict[bytes, float] = {}
        done = threading.Event()
        wanted = len(raws)

        def on_block(_block: object, receipts: list[Any]) -> None:
            now = time.perf_counter()
            for r in receipts:
                included[r.tx_hash] = now
            if len(included) >= wanted:
                done.set()

        node.subscribe(on_block)
        submitted: dict[bytes, float] = {}
        first = time.perf_counter()
        offer = Offer(raws, offered_tps)
        for chunk, at in offer:
            for tx_hash in offer.answered(chunk, node.submit_many(chunk)):
                submitted[tx_hash] = at
        done.wait(timeout=120)
        node.unsubscribe(on_block)
        latencies = [included[h] - t for h, t in submitted.items() if h in included]
        return Measured(latencies, max(included.values()) - first, offer.refusals)

    def rss_mb(self) -> float:
        return rss_of()

    def close(self) -> None:
        if self.node is not None:
            self.node.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class _RpcSystem:
    """Shared JSON-RPC driving: a sender posting batches, a poller watching new blocks."""

    name: str
    chain_id: int
    url: str
    max_chunk = MAX_CHUNK

    def _post(self, session: requests.Session, body: Any) -> Any:
        return session.post(
            self.url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=120
        ).json()

    def _send_batch(self, session: requests.Session, raws: list[bytes]) -> list[str | dict[str, Any]]:
        """Each transaction's hash, or the -32005 error object of one refused with back-pressure."""
        body = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
            for i, r in enumerate(raws)
        ]
        answered = self._post(session, body)
        if not isinstance(answered, list):
            raise RuntimeError(f"{self.name} answered a batch with {answered}")
        answers = sorted(answered, key=lambda a: a["id"])
        bad = [a["error"] for a in answers if "error" in a and a["error"].get("code") != OVERLOADED]
        if bad:
            raise RuntimeError(f"{self.name} refused benchmark transactions: {bad[:3]}")
        return [a.get("result") or a["error"] for a in answers]

    def _block_number(self, session: requests.Session) -> int:
        return int(self._post(session, {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})["result"], 16)

    def _watch_heads(self, stop: threading.Event, seen: int, included: dict[str, float], lock: threading.Lock) -> None:
        """Record when each transaction's block is announced, until ``stop``.

        The node's ``newHeads`` subscription (WebSocket, same port) pushes each block once
        it is durable, so watching costs the node one push a block and no polling. A
        block's time is its push's arrival, taken on a thread of its own so that fetching
        the blocks' transaction hashes never delays it.
        """
        session = requests.Session()
        with ws_connect(self.url.replace("http://", "ws://", 1), max_size=None, open_timeout=30) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
            answer = json.loads(ws.recv(timeout=30))
            if "result" not in answer:
                raise RuntimeError(f"{self.name} refused a newHeads subscription: {answer}")
            pushes: queue.Queue[tuple[int, float]] = queue.Queue()

            def listen() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for message in ws:
                        pushes.put((int(json.loads(message)["params"]["result"]["number"], 16), time.perf_counter()))

            threading.Thread(target=listen, name="bench-heads", daemon=True).start()
            # a block made between our first look and the subscription has no push: look again
            pushes.put((self._block_number(session), time.perf_counter()))
            while not stop.is_set():
                try:
                    head, now = pushes.get(timeout=0.1)
                except queue.Empty:
                    continue
                for start in range(seen + 1, head + 1, 200):
                    body = [
                        {"jsonrpc": "2.0", "id": n, "method": "eth_getBlockByNumber", "params": [hex(n), False]}
                        for n in range(start, min(head, start + 199) + 1)
                    ]
                    for block in self._post(session, body):
                        with lock:
                            for tx_hash in block["result"]["transactions"]:
                                included.setdefault(tx_hash, now)
                seen = max(seen, head)

    def run(self, raws: list[bytes], offered_tps: float) -> Measured:
        session = requests.Session()
        included: dict[str, float] = {}
        stop = threading.Event()
        lock = threading.Lock()
        failed: list[BaseException] = []
        seen = self._block_number(session)

        def poll() -> None:
            try:
                self._watch_heads(stop, seen, included, lock)
            except BaseException as exc:  # reported below: without its watcher a run measures nothing
                failed.append(exc)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        submitted: dict[str, float] = {}
        first = time.perf_counter()
        offer = Offer(raws, offered_tps, self.max_chunk)
        for chunk, at in offer:
            for tx_hash in offer.answered(chunk, self._send_batch(session, chunk)):
                submitted[tx_hash] = at
        deadline = time.monotonic() + 120  # a system that cannot keep up is reported with what it included
        while time.monotonic() < deadline and not failed:
            with lock:
                if all(h in included for h in submitted):
                    break
            time.sleep(0.01)
        stop.set()
        poller.join()
        if failed:
            raise RuntimeError(f"{self.name}: watching new heads failed: {failed[0]!r}") from failed[0]
        latencies = [included[h] - t for h, t in submitted.items() if h in included]
        return Measured(latencies, max(included.values()) - first, offer.refusals)

    def send_setup(self, raws: list[bytes]) -> None:
        session = requests.Session()
        hashes: list[str] = []
        for i in range(0, len(raws), 100):
            for answer in self._send_batch(session, raws[i : i + 100]):
                if not isinstance(answer, str):
                    raise RuntimeError(f"{self.name} refused a setup transaction: {answer}")
                hashes.append(answer)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = self._post(
                session, {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [hashes[-1]]}
            )
            if answer.get("result"):
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: setup transactions not included")


class NodeRpc(_RpcSystem):
    """``node-rpc``: ``qkdchain node`` in its own process, over HTTP on loopback."""

    name = "node-rpc"

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id
        self._dir = Path(tempfile.mkdtemp(prefix="qkdchain-bench-rpc-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def prepare(self, accounts: list[str]) -> None:
        genesis = Genesis(
            chain_id=self.chain_id,
            alloc={a: 10**24 for a in accounts},
            validators=(address_of_key(DEV_VALIDATOR_KEY),),
            admin=accounts[0],
            permissioned=True,
            timestamp=int(time.time()),
        )
        genesis_file = self._dir / "genesis.json"
        genesis_file.write_text(json.dumps(genesis.to_json()))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "qkdchain.cli", "node", "--data-dir", str(self._dir / "data"),
             "--port", str(self.port), "--genesis", str(genesis_file)],
            env=dict(os.environ, QKDCHAIN_VALIDATOR_KEY=DEV_VALIDATOR_KEY.hex()),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self._block_number(requests.Session())
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("qkdchain node did not start")

    def rss_mb(self) -> float:
        return rss_of(self._proc.pid) if self._proc else 0.0

    def pids(self) -> list[int]:
        return [self._proc.pid] if self._proc else []

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
        shutil.rmtree(self._dir, ignore_errors=True)


class AnvilRpc(_RpcSystem):
    """``anvil-rpc``: anvil (auto-mining), funded by its dev account, the same batches."""

    name = "anvil-rpc"
    max_chunk = 50  # anvil stalls (and its memory balloons) on batches of hundreds

    def __init__(self) -> None:
        self._anvil = AnvilProcess()
        self.chain: RpcChain = self._anvil.start()
        self.chain_id = self._anvil.chain_id
        self.url = self._anvil.url

    def prepare(self, accounts: list[str]) -> None:
        for a in accounts:
            self.chain.fund(a, 10**20)

    def rss_mb(self) -> float:
        proc = self._anvil._proc
        return rss_of(proc.pid) if proc else 0.0

    def close(self) -> None:
        self._anvil.stop()


class EthTester:
    """``eth-tester``: the reference; every raw transaction is mined as it is sent."""

    name = "eth-tester"

    def __init__(self) -> None:
        self.chain = EthTesterChain()
        self.chain_id = int(self.chain.w3.eth.chain_id)

    def prepare(self, accounts: list[str]) -> None:
        for a in accounts:
            self.chain.fund(a, 10**20)

    def send_setup(self, raws: list[bytes]) -> None:
        for raw in raws:
            self.chain.w3.eth.send_raw_transaction(raw)

    def run(self, raws: list[bytes], offered_tps: float) -> Measured:
        w3 = self.chain.w3
        latencies: list[float] = []
        first = time.perf_counter()
        for chunk, at in Offer(raws, offered_tps):
            for raw in chunk:
                tx_hash = w3.eth.send_raw_transaction(raw)
                w3.eth.get_transaction_receipt(tx_hash)
                latencies.append(time.perf_counter() - at)
        return Measured(latencies, time.perf_counter() - first)

    def rss_mb(self) -> float:
        return rss_of()

    def close(self) -> None:
        self.chain.close()


def _make(system: str) -> System:
    if system == "eth-tester":
        return EthTester()
    if system == "node":
        return InProcessNode(1337)
    if system == "node-rpc":
        return NodeRpc(1337)
    if system == "anvil-rpc":
        return AnvilRpc()
    raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")


@contextlib.contextmanager
def _opened(system: str) -> Iterator[System]:
    handle = _make(system)
    try:
        yield handle
    finally:
        handle.close()


def engine_memory(transactions: int = 20_000) -> dict[str, Any]:
    """Memory of the revm engine alone over a long run that does not grow the state:
    the TA adds and removes the same vehicle, over and over. Flat RSS and a journal
    that stays empty show that nothing accumulates per transaction."""
    from node.engine.base import Account, StateDiff, Transaction
    from node.engine.revm import EMPTY_CODE_HASH, RevmEngine

    ta, vehicle = "0x" + "aa" * 20, "0x" + "bb" * 20
    engine = RevmEngine(1337)
    engine.load(StateDiff(accounts={ta: Account(0, 10**24, EMPTY_CODE_HASH)}))
    engine.begin_block(1, 1)
    registry = engine.execute(Transaction(ta, 0, None, load_artifact().bytecode, 3_000_000)).contract_address
    assert registry is not None
    calls = (_add_vehicle(vehicle), _call("removeMember(address)", vehicle))
    rss_start = rss_of()
    started = time.perf_counter()
    for i in range(transactions):
        if i % 500 == 0:
            engine.end_block()
            engine.begin_block(2 + i // 500, 2)
        engine.execute(Transaction(ta, i + 1, registry, calls[i % 2], 200_000))
    elapsed = time.perf_counter() - started
    return {
        "transactions": transactions,
        "tx_per_s": round(transactions / elapsed),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_of(), 1),
        "journal_entries_end": engine.evm.journal_len,
    }


def recovery_rate(raws: list[bytes], chain_id: int, pool: ProcessPoolExecutor) -> dict[str, float]:
    """The machine's own rate of decoding and recovering signed transactions (the floor of
    what admission costs), on one core and on all cores, as the node's pool does it."""
    started = time.perf_counter()
    decode_chunk(raws, chain_id)
    one = len(raws) / (time.perf_counter() - started)
    workers = os.cpu_count() or 1
    size = -(-len(raws) // (workers * 2))
    chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
    list(pool.map(decode_chunk, chunks[:workers], [chain_id] * workers))  # warm the workers
    started = time.perf_counter()
    list(pool.map(decode_chunk, chunks, [chain_id] * len(chunks)))
    return {"one_core": round(one, 1), "all_cores": round(len(raws) / (time.perf_counter() - started), 1)}


def overload_plan(results: list[dict[str, Any]], system: str, factor: float) -> tuple[int, int, int]:
    """(offered tx/s, transactions, bracket's offered tx/s) of ``system``'s overload point:
    ``factor`` times its measured peak, for as many transactions as the peak point included,
    so the two points differ in offered load and not in length; the bracket re-runs the
    peak point's offered load just before and just after it."""
    peak = max((r for r in results if r["system"] == system), key=lambda r: r["tps"])
    return max(1, round(peak["tps"] * factor)), max(1, peak["transactions"]), peak["offered_tps"]


def bracket(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The capacity an overload point is compared with at its own state size: the mean TPS
    of the peak point's load run just before and just after it (a state that grows as the
    run goes on slows every later point; the mean of the two sides cancels a steady drift)."""
    return {
        "offered_tps": before["offered_tps"],
        "before_tps": before["tps"],
        "after_tps": after["tps"],
        "tps": round((before["tps"] + after["tps"]) / 2, 1),
    }


def summarize(
    results: list[dict[str, Any]], recovery: dict[str, float], overload: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per system: the peak TPS, its ratio to the machine's recovery rate on all cores, how
    the highest offered load fared against the peak (throughput kept, p99), and the same for
    the overload point (a multiple of the peak, as many transactions as the peak point),
    against the peak and against its bracket (:func:`bracket`)."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["system"] for r in results):
        points = [r for r in results if r["system"] == name]
        peak = max(p["tps"] for p in points)
        top = max(points, key=lambda p: p["offered_tps"])
        over = next((o for o in overload or () if o["system"] == name), None)
        out[name] = {
            "peak_tps": peak,
            "peak_vs_recovery_all_cores": round(peak / recovery["all_cores"], 3) if recovery["all_cores"] else None,
            "highest_load": {
                "offered_tps": top["offered_tps"],
                "times_peak": round(top["offered_tps"] / peak, 2) if peak else None,
                "tps_vs_peak": round(top["tps"] / peak, 3) if peak else None,
                "p99_ms": top["latency_ms"]["p99"],
                "refusals": top["refusals"],
            },
            "overload": None
            if over is None
            else {
                "offered_tps": over["offered_tps"],
                "times_peak": over["times_peak"],
                "tps_vs_peak": round(over["tps"] / peak, 3) if peak else None,
                "bracket_tps": over["bracket"]["tps"],
                "tps_vs_bracket": round(over["tps"] / over["bracket"]["tps"], 3) if over["bracket"]["tps"] else None,
                "p99_ms": over["latency_ms"]["p99"],
                "refusals": over["refusals"],
            },
        }
    return out


def load_point(offered_tps: int, measured: Measured, rss_mb: float) -> dict[str, Any]:
    """One measured point: what was offered, what got through, latency percentiles (ms) of
    the accepted transactions, back-pressure refusals, memory."""
    lat = Percentiles.of([x * 1000 for x in measured.latencies])
    elapsed = measured.elapsed
    return {
        "offered_tps": offered_tps,
        "tps": round(len(measured.latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": {"p50": round(lat.p50, 3), "p95": round(lat.p95, 3), "p99": round(lat.p99, 3)},
        "transactions": len(measured.latencies),
        "refusals": measured.refusals,
        "rss_mb": round(rss_mb, 1),
    }


def run_node_benchmark(config: BenchConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Measure every system at every offered load; returns the JSON report."""
    config = config or BenchConfig()
    say = progress or (lambda _m: None)
    sys.setswitchinterval(0.001)  # as `qkdchain node` runs: the proposer and admission threads trade the GIL faster
    results: list[dict[str, Any]] = []
    overload: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for name in config.systems:
            if name == "anvil-rpc" and find_anvil() is None:
                skipped[name] = "anvil binary not found (./scripts/dev setup installs it)"
                continue
            say(f"{name}: setting up")
            with _opened(name) as system:
                workload = Workload(system.chain_id, config.vehicles, pool)
                system.prepare(workload.accounts)
                setup = workload.setup()
                if isinstance(system, InProcessNode):
                    assert system.node is not None
                    last = system.node.submit_many(setup)[-1]
                    if not isinstance(last, bytes):
                        raise RuntimeError(f"setup refused: {last}")
                    system.node.wait(last)
                else:
                    system.send_setup(setup)  # type: ignore[attr-defined]
                for load in config.loads:
                    count = config.transactions(name, load)
                    say(f"{name}: signing {count:,} transactions")
                    raws = workload.commits(count)
                    say(f"{name}: offering {load:,} tx/s ({count:,} transactions)")
                    measured = system.run(raws, load)
                    results.append({"system": name, **load_point(load, measured, system.rss_mb())})
                    say(f"{name} at {load:,}: {results[-1]['tps']:,} tx/s, p50 {results[-1]['latency_ms']['p50']} ms")
                if config.overload:
                    offered, count, usual = overload_plan(results, name, config.overload)
                    sides = []
                    for load, what in ((usual, "before"), (offered, "overload"), (usual, "after")):
                        say(f"{name}: {what}: {load:,} tx/s ({count:,} transactions)")
                        sides.append(load_point(load, system.run(workload.commits(count), load), system.rss_mb()))
                    before, point, after = sides
                    overload.append(
                        {"system": name, "times_peak": config.overload, **point, "bracket": bracket(before, after)}
                    )
    say("signature recovery alone: one core and all cores")
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        recovery = recovery_rate(Workload(1337, config.vehicles, pool).commits(4_000), 1337, pool)
    say("revm engine: memory over a long run")
    memory = engine_memory(config.memory_transactions) if config.memory_transactions else None
    return {
        "benchmark": "node",
        "engine_memory": memory,
        "workload": "KeyRegistry.commitKey, pre-signed EIP-1559, from many vehicle accounts",
        "config": {
            "loads": list(config.loads),
            "seconds": config.seconds,
            "vehicles": config.vehicles,
            "overload": config.overload,
        },
        "machine": {"cpus": os.cpu_count()},
        "results": results,
        "overload": overload,
        "recovery_tps": recovery,
        "summary": summarize(results, recovery, overload),
        "skipped": skipped,
        "claimed": {"validation_ms": 5.0, "tps": 10_000},
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


def plot_load_curves(
    groups: dict[str, list[dict[str, Any]]],
    path: Path,
    tps_label: str,
    latency_label: str,
    decorate: Callable[[Any, Any], None],
) -> Path:
    """Throughput and latency (p50, p99) against offered load, one curve per group of rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_tps, ax_lat) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (label, rows) in enumerate(groups.items()):
        offered = [r["offered_tps"] for r in rows]
        colour = f"C{i}"
        ax_tps.loglog(offered, [max(r["tps"], 0.1) for r in rows], "o-", color=colour, label=label)
        for q, style, alpha in (("p50", "o-", 1.0), ("p99", "x:", 0.6)):
            values = [max(r["latency_ms"][q], 1e-3) for r in rows]
            ax_lat.loglog(offered, values, style, color=colour, alpha=alpha, label=f"{label} {q}")
    decorate(ax_tps, ax_lat)
    ax_tps.set_xlabel("offered load (tx/s)")
    ax_tps.set_ylabel(tps_label)
    ax_lat.set_xlabel("offered load (tx/s)")
    ax_lat.set_ylabel(latency_label)
    for ax in (ax_tps, ax_lat):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_tps.set_title("Throughput")
    ax_lat.set_title("Latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_node_benchmark(report: dict[str, Any], path: Path) -> Path:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        groups.setdefault(r["system"], []).append(r)

    def decorate(ax_tps: Any, ax_lat: Any) -> None:
        ax_tps.axhline(report["claimed"]["tps"], color="grey", ls="--", label="claimed 10,000 TPS")
        ax_lat.axhline(report["claimed"]["validation_ms"], color="grey", ls="--", label="claimed 5 ms")
        overload = {o["system"]: o for o in report.get("overload", [])}
        for i, name in enumerate(groups):  # each system's overload point, in its curve's colour
            if (o := overload.get(name)) is None:
                continue
            star = {"marker": "*", "ls": "none", "ms": 11, "mfc": "none", "color": f"C{i}"}
            label = f"overload point ({o['times_peak']}x peak, same length)" if not i else None
            ax_tps.loglog([o["offered_tps"]], [max(o["tps"], 0.1)], label=label, **star)
            if (side := o.get("bracket")) is not None:  # its peak load just before and after it
                tps = [max(side["before_tps"], 0.1), max(side["after_tps"], 0.1)]
                label = "peak load just before and after it" if not i else None
                ax_tps.loglog([side["offered_tps"]] * 2, tps, marker="d", ls="none", ms=5, color=f"C{i}", label=label)
            p99 = max(o["latency_ms"]["p99"], 1e-3)
            ax_lat.loglog([o["offered_tps"]], [p99], label=None if i else "overload point p99", **star)

    return plot_load_curves(groups, path, "validated tx/s", "submission to receipt (ms)", decorate)
