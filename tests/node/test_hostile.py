"""A real node process under hostile clients: it stays up, keeps answering a normal client,
refuses each attack by name, and changes no state.

Each attack comes from raw sockets or plain HTTP, as an attacker with no key and no
account would send it. "Bounded latency" is checked the only honest way a test can:
the normal client's requests carry a timeout, and they must be answered within it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from node.launcher import NodeProcess
from tests.node.conftest import VALIDATOR_KEY, address_of, key_of, make_genesis, tx

NORMAL_TIMEOUT_S = 10.0  # the normal client's patience during every attack


class Running(NodeProcess):
    def rpc(self, method: str, params: list[Any] | None = None, timeout: float = NORMAL_TIMEOUT_S) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        return requests.post(self.url, json=body, timeout=timeout).json()

    def state(self) -> tuple[object, ...]:
        """What an attack must not change: the head (number, hash, timestamp)."""
        head = self.rpc("eth_getBlockByNumber", ["latest", False])["result"]
        return head["number"], head["hash"], head["timestamp"]


def start_node(tmp_path: Path, *extra: str) -> Running:
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(make_genesis(key_of("ta"), []).to_json()))
    env = {"QKDCHAIN_VALIDATOR_KEY": VALIDATOR_KEY.hex()}
    return Running(tmp_path, ("--genesis", str(genesis_file), "--workers", "0", *extra), env)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_node(tmp_path_factory.mktemp("hostile"))
    with running:
        yield running


def raw_exchange(node: Running, data: bytes, timeout: float = NORMAL_TIMEOUT_S) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes or goes quiet."""
    with socket.create_connection((node.host, node.port), timeout=timeout) as s:
        s.sendall(data)
        chunks: list[bytes] = []
        try:
            while chunk := s.recv(65_536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status(reply: bytes) -> int:
    """The HTTP status code of a raw response (0: none came)."""
    parts = reply.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def post(body: bytes, extra_headers: str = "") -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra_headers}\r\n"
    ).encode() + body


def test_the_node_runs_with_python_s_default_recursion_limit(node: Running) -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":' + b"[" * 70_000 + b"]" * 70_000 + b"}"
    answer = json.loads(raw_exchange(node, post(deep)).partition(b"\r\n\r\n")[2])
    assert answer["error"]["code"] == -32700 and "nested deeper" in answer["error"]["message"]
    assert node.process.poll() is None
    assert node.rpc("eth_chainId")["result"] == hex(4242)


def test_unterminated_strings_cost_linear_time(node: Running) -> None:
    """A body of escaped quotes once made the depth check quadratic (48 KB held the GIL 15 s)."""
    for body in (b'"\\' * 24_000, b'{"a":"' + b'\\"' * 200_000):
        answer = json.loads(raw_exchange(node, post(body)).partition(b"\r\n\r\n")[2])
        assert answer["error"]["code"] == -32700
        assert node.rpc("eth_chainId", timeout=2.0)["result"] == hex(4242)


def test_costly_and_unbounded_requests_are_refused(node: Running) -> None:
    before = node.state()
    answer = node.rpc("eth_feeHistory", ["0x400", "latest", [0] * 101])
    assert answer["error"]["code"] == -32602
    assert node.rpc("eth_feeHistory", ["0x4", "latest", [50, 10]])["error"]["code"] == -32602
    for method, params in (("debug_traceCall", [{"data": "0x5b600056"}, "latest"]),
                           ("debug_traceTransaction", ["0x" + "00" * 32])):  # fmt: skip
        answer = node.rpc(method, params)
        assert answer["error"]["data"] == {"error": "DebugMethodDisabled"}, answer
    # a batch whose requests are invalid runs none of them
    raw = "0x" + tx(key_of("ta"), 0, "0x" + "42" * 20, b"", 21_000, value=1).hex()
    batch = [{"jsonrpc": "1.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]} for i in range(2)]
    answers = requests.post(node.url, json=batch, timeout=10).json()
    assert [a["error"]["code"] for a in answers] == [-32600, -32600]
    assert node.rpc("eth_getTransactionCount", [address_of(key_of("ta")), "pending"])["result"] == "0x0"
    assert node.state() == before


def test_huge_bodies_are_refused_before_they_are_read(node: Running) -> None:
    before = node.state()
    declared = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    assert status(raw_exchange(node, declared)) == 413
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"[" + b"1," * 500_000 + b"1]"
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection((node.host, node.port), timeout=NORMAL_TIMEOUT_S) as s:
        s.sendall(chunked)
        try:
            for _ in range(8):  # 8 MB in chunks: the server stops reading at 5 MiB
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = s.recv(65_536)
    assert status(reply) == 413
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1_001)]).encode()
    answer = json.loads(raw_exchange(node, post(batch)).partition(b"\r\n\r\n")[2])
    assert answer["error"]["code"] == -32600 and "batch" in answer["error"]["message"]
    assert node.state() == before and node.process.poll() is None


def test_request_smuggling_is_refused_and_the_hidden_call_never_runs(node: Running) -> None:
    before = node.state()
    hidden = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}'
    inner = post(hidden)
    outer = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    body = f"{len(outer):x}\r\n".encode() + outer + b"\r\n0\r\n\r\n" + inner
    smuggled = (
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode() + body
    reply = raw_exchange(node, smuggled)
    assert status(reply) == 400, reply[:200]
    assert b'"id":7' not in reply  # the hidden request was never answered, so never run
    assert node.state() == before


def test_malformed_quantities_and_ids_are_refused_as_the_spec_says(node: Running) -> None:
    address = "0x" + "11" * 20
    for bad in ["0x0_1", "0x01", "0x\u0661", " 0x1", "0x1 ", "1", "0x", "-0x1", "0X1"]:
        answer = node.rpc("eth_getBlockByNumber", [bad, False])
        assert answer["error"]["code"] == -32602, (bad, answer)
    assert node.rpc("eth_getBalance", [address, 5])["error"]["code"] == -32602
    assert node.rpc("eth_getBlockByNumber", [hex(2**64), False])["result"] is None
    assert node.rpc("eth_getBlockByNumber", [hex(2**64 - 1), False])["result"] is None
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"jsonrpc":"2.0","id":' + constant + b',"method":"eth_chainId"}'
        answer = json.loads(raw_exchange(node, post(body)).partition(b"\r\n\r\n")[2])
        assert answer == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
    for bad_id in (b"1.5", b"true", b"[1]", b"{}"):
        body = b'{"jsonrpc":"2.0","id":' + bad_id + b',"method":"eth_chainId"}'
        answer = json.loads(raw_exchange(node, post(body)).partition(b"\r\n\r\n")[2])
        assert answer["error"]["code"] == -32600 and answer["id"] is None, bad_id
    # notifications get no answer, not even for a method that does not exist or an error
    for note in (b'{"jsonrpc":"2.0","method":"no_such_method"}', b'{"jsonrpc":"2.0","method":"eth_getBalance"}'):
        reply = raw_exchange(node, post(note))
        assert status(reply) == 200 and reply.partition(b"\r\n\r\n")[2] == b"", reply


def test_dev_methods_need_dev_mode(node: Running) -> None:
    before = node.state()
    for method, params in (("evm_increaseTime", [hex(2**63)]), ("evm_increaseTime", ["0x28de80"]), ("evm_mine", [])):
        answer = node.rpc(method, params)
        assert answer["error"]["code"] == -32601, answer
        assert answer["error"]["data"] == {"error": "DevMethodDisabled"}
    assert node.state() == before


def test_dev_mode_bounds_the_clock(tmp_path: Path) -> None:
    dev = start_node(tmp_path, "--dev")
    with dev:
        answer = dev.rpc("evm_increaseTime", [hex(2**63)])
        assert answer["error"]["data"] == {"error": "TimeOffsetOutOfRange"}
        assert dev.rpc("evm_increaseTime", ["0x3c"])["result"] == "0x3c"
        mined = dev.rpc("evm_mine")
        assert mined["result"] == "0x0"
        assert dev.state()[0] == "0x1"


def test_slow_and_silent_clients_do_not_starve_a_normal_one(node: Running) -> None:
    before = node.state()
    held: list[socket.socket] = []
    try:
        for i in range(600):  # slowloris: half a request line, then nothing
            s = socket.create_connection((node.host, node.port), timeout=5)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"POS")
            held.append(s)
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
        for _ in range(50):  # bodies promised and never sent
            s = socket.create_connection((node.host, node.port), timeout=5)
            s.sendall(post(body)[: -len(body) + 5])
            held.append(s)
        for _ in range(20):
            assert node.rpc("eth_chainId")["result"] == hex(4242)
    finally:
        for s in held:
            s.close()
    assert node.state() == before and node.process.poll() is None


def test_a_body_that_never_arrives_is_dropped_with_408(node: Running) -> None:
    with socket.create_connection((node.host, node.port), timeout=30) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        reply = s.recv(65_536)
    assert status(reply) == 408, reply[:200]


def test_many_busy_clients_are_all_answered(node: Running) -> None:
    failures: list[BaseException] = []
    answered = [0]
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        try:
            for _ in range(10):
                answer = session.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"},
                                      timeout=30).json()  # fmt: skip
                assert "result" in answer or answer["error"]["code"] == -32005  # served, or a named refusal
                with lock:
                    answered[0] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(200)]
    for t in threads:
        t.start()
    assert node.rpc("eth_chainId")["result"] == hex(4242)
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert answered[0] == 2_000


def test_cross_origin_calls_are_refused_unless_allowed(node: Running) -> None:
    preflight = requests.options(node.url, headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "POST"}, timeout=5)  # fmt: skip
    assert preflight.status_code == 403
    call = requests.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                         headers={"Origin": "https://evil.example"}, timeout=5)  # fmt: skip
    assert call.status_code == 403 and "Access-Control-Allow-Origin" not in call.headers


def test_the_node_survived_the_battery(node: Running) -> None:
    assert node.process.poll() is None
    assert node.rpc("eth_chainId")["result"] == hex(4242)
