"""``qkdchain bench siege``: a normal client's latency while hostile clients attack the node.

For each system (our node as a separate process, and anvil as the reference, in the same
run) a probe client asks ``eth_blockNumber`` every 20 ms on a keep-alive connection and
records its latency, first undisturbed, then during each attack:

- ``slowloris``: N connections that send half a request header and then one byte a second;
- ``busy``: M concurrent keep-alive clients asking as fast as they are answered;
- ``eth_call hammer``: K clients running 30 M-gas ``eth_call`` loops back to back, while a
  sender submits transfers at a fixed rate and times submit-to-receipt (also measured
  without the hammer first).

The resident memory of the attacked process is sampled throughout. A probe request that
gets no answer within 10 s counts as a failure (its latency is not invented).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import requests
from eth_account import Account

from node.client.anvil import AnvilProcess, find_anvil
from node.devkeys import DEV_FAUCET_KEY
from node.launcher import NodeProcess
from node.metrics import Percentiles
from node.txcodec import sign_eip1559

PROBE_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 10.0
LOOP_INITCODE = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP: runs until the gas is gone
SINK = "0x" + "5e" * 20


@dataclass(frozen=True)
class SiegeConfig:
    slow_connections: int = 2_000
    busy_clients: int = 500
    hammer_clients: int = 4
    seconds: float = 5.0
    send_rate: float = 50.0  # transfers per second during the hammer phases
    systems: tuple[str, ...] = ("node", "anvil")


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Probe:
    """The normal client: latencies of ``eth_blockNumber`` every 20 ms, and RSS samples."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid
        self.latencies: list[float] = []
        self.failures = 0
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                answer = session.post(self.url, json=body, timeout=PROBE_TIMEOUT_S).json()
                if "result" in answer:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.failures += 1
            except (requests.RequestException, ValueError):
                self.failures += 1
                session = requests.Session()
            self.rss.append(rss_mb(self.pid))
            self._stop.wait(PROBE_INTERVAL_S)

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT_S + 5)

    def summary(self) -> dict[str, Any]:
        return {
            "probe_ms": Percentiles.of([x * 1000 for x in self.latencies]).to_json(),
            "probe_failures": self.failures,
            "rss_mb_max": round(max(self.rss, default=0.0), 1),
        }


@contextlib.contextmanager
def _background(attack: Callable[[threading.Event], Any]) -> Iterator[dict[str, Any]]:
    """Run ``attack(stop)`` on a thread for the duration of the block; its result lands in the dict."""
    stop, result = threading.Event(), dict[str, Any]()
    thread = threading.Thread(target=lambda: result.update(attack(stop) or {}), daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(timeout=60)


def _slowloris(host: str, port: int, count: int) -> Callable[[threading.Event], dict[str, Any]]:
    async def hold(stop: threading.Event) -> dict[str, Any]:
        writers: list[asyncio.StreamWriter] = []
        closed = [0]
        refused = 0

        async def watch(reader: asyncio.StreamReader) -> None:
            with contextlib.suppress(OSError):
                await reader.read()  # returns at end of file: the server closed the connection
            closed[0] += 1

        watchers = []
        started = time.monotonic()
        for i in range(count):
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")
                writers.append(writer)
                watchers.append(asyncio.ensure_future(watch(reader)))
            except OSError:
                refused += 1
            if i % 100 == 99:
                await asyncio.sleep(0)
        while not stop.is_set():
            await asyncio.sleep(1.0)
            for writer in writers:
                with contextlib.suppress(Exception):
                    writer.write(b"X")  # one more header byte a second
        held_s = time.monotonic() - started
        closed_by_server = closed[0]
        for writer in writers:
            writer.close()
        for watcher in watchers:
            watcher.cancel()
        return {"slow_opened": len(writers), "slow_refused": refused, "slow_held_s": round(held_s, 1),
                "slow_closed_by_server": closed_by_server}  # fmt: skip

    return lambda stop: asyncio.run(hold(stop))


def _busy(url: str, clients: int) -> Callable[[threading.Event], dict[str, Any]]:
    async def run(stop: threading.Event) -> dict[str, Any]:
        counts = {"busy_answered": 0, "busy_refused": 0, "busy_failed": 0}
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def client() -> None:
                while not stop.is_set():
                    try:
                        async with session.post(url, json=body) as response:
                            answer = await response.json(content_type=None)
                            counts["busy_answered" if "result" in answer else "busy_refused"] += 1
                    except (aiohttp.ClientError, TimeoutError, ValueError):
                        counts["busy_failed"] += 1

            await asyncio.gather(*(client() for _ in range(clients)))
        return counts

    return lambda stop: asyncio.run(run(stop))


def _hammer(url: str, clients: int) -> Callable[[threading.Event], dict[str, Any]]:
    def run(stop: threading.Event) -> dict[str, Any]:
        done = [0]
        call = {"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                "params": [{"data": LOOP_INITCODE, "gas": hex(30_000_000)}, "latest"]}  # fmt: skip

        def one() -> None:
            session = requests.Session()
            while not stop.is_set():
                with contextlib.suppress(requests.RequestException):
                    session.post(url, json=call, timeout=60)
                    done[0] += 1

        threads = [threading.Thread(target=one, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"heavy_calls": done[0]}

    return run


def _send_and_time(url: str, chain_id: int, seconds: float, rate: float, nonce: int) -> tuple[dict[str, Any], int]:
    """Transfers at ``rate`` for ``seconds``; submit-to-receipt of each (one sender, polled every 1 ms)."""
    session = requests.Session()
    key = bytes.fromhex(DEV_FAUCET_KEY[2:])
    latencies: list[float] = []
    lost = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = sign_eip1559(key, chain_id, nonce, SINK, b"", 21_000, 10 * 10**9, 10**9, value=1)
        started = time.perf_counter()
        sent = session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                                       "params": ["0x" + raw.hex()]}, timeout=30).json()  # fmt: skip
        if "result" not in sent:
            raise RuntimeError(f"the transfer was refused: {sent}")
        nonce += 1
        ask = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [sent["result"]]}
        while True:
            if session.post(url, json=ask, timeout=30).json().get("result"):
                latencies.append(time.perf_counter() - started)
                break
            if time.perf_counter() - started > 60:
                lost += 1
                break
            time.sleep(0.001)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    return {"submit_to_receipt_ms": Percentiles.of([x * 1000 for x in latencies]).to_json(), "lost": lost}, nonce


def _siege_one(name: str, url: str, pid: int, chain_id: int, config: SiegeConfig,
               say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    host, port = url.removeprefix("http://").rsplit(":", 1)
    phases: dict[str, Any] = {"rss_mb_start": round(rss_mb(pid), 1)}
    attacks: list[tuple[str, Callable[[threading.Event], Any] | None]] = [
        ("baseline", None),
        (f"slowloris x{config.slow_connections}", _slowloris(host, int(port), config.slow_connections)),
        (f"busy x{config.busy_clients}", _busy(url, config.busy_clients)),
    ]
    for label, attack in attacks:
        say(f"{name}: {label}")
        with contextlib.ExitStack() as stack:
            extra = stack.enter_context(_background(attack)) if attack else {}
            time.sleep(0.5 if attack else 0)  # let the attack build up
            probe = stack.enter_context(_Probe(url, pid))
            # slow connections are held past the server's idle timeout (10 s), to see it cut them
            time.sleep(max(config.seconds, 12.0) if label.startswith("slowloris") else config.seconds)
            stack.pop_all().close()
        phases[label] = probe.summary() | dict(extra)
        time.sleep(1.0)
    nonce = 0
    say(f"{name}: transfers, no hammer")
    phases["send"], nonce = _send_and_time(url, chain_id, config.seconds, config.send_rate, nonce)
    say(f"{name}: transfers beside {config.hammer_clients} eth_call hammers")
    with _background(_hammer(url, config.hammer_clients)) as hammered:
        time.sleep(0.5)
        phases[f"send beside eth_call x{config.hammer_clients}"], nonce = _send_and_time(
            url, chain_id, config.seconds, config.send_rate, nonce
        )
    phases[f"send beside eth_call x{config.hammer_clients}"] |= dict(hammered)
    phases["rss_mb_end"] = round(rss_mb(pid), 1)
    return {"system": name, **phases}


def run_siege(config: SiegeConfig, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every attack against each system in ``config.systems``; the report as JSON-able data."""
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for system in config.systems:
        if system == "node":
            with (
                tempfile.TemporaryDirectory(prefix="qkdchain-siege-") as directory,
                NodeProcess(Path(directory), ("--chain-id", "1337")) as node,
            ):
                results.append(_siege_one("node", node.url, node.pid, 1337, config, progress))
        elif system == "anvil":
            try:
                find_anvil()
            except Exception as exc:
                skipped["anvil"] = str(exc)
                continue
            anvil = AnvilProcess(chain_id=31337)
            with anvil:
                pid = anvil.pid
                results.append(_siege_one("anvil", anvil.url, pid, 31337, config, progress))
        else:
            raise ValueError(f"unknown system {system!r}: node or anvil")
    return {
        "benchmark": "siege",
        "config": asdict(config),
        "faucet": Account.from_key(DEV_FAUCET_KEY).address,
        "results": results,
        "skipped": skipped,
    }


def plot_siege(report: dict[str, Any], path: Path) -> Path:
    """Probe p50 and p99 per phase and system (log scale), as a grouped bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    systems = report["results"]
    labels = [k for k, v in systems[0].items() if isinstance(v, dict) and "probe_ms" in v] if systems else []
    width = 0.8 / max(1, 2 * len(systems))
    for s_index, result in enumerate(systems):
        for q_index, q in enumerate(("p50", "p99")):
            values = [max(result[label]["probe_ms"][q], 0.01) for label in labels]
            offset = (2 * s_index + q_index) * width
            ax.bar([i + offset for i in range(len(labels))], values, width, label=f"{result['system']} {q}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    ax.set_yscale("log")
    ax.set_ylabel("normal client eth_blockNumber latency (ms)")
    ax.set_title("A normal client during attacks (same run, same machine)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
