"""A local validator network: one ``qkdchain node`` OS process per validator or follower.

:func:`plan_network` writes what a network is made of into one directory: a key per
node (``keys/NAME.key``, mode 0600), the genesis listing the validators, the static
peer file every node reads, and one data directory per node. :class:`LocalNetwork`
starts the processes (JSON logs in ``logs/NAME.log``), waits until each answers JSON-RPC,
and records the pids in ``network.json`` so that ``qkdchain network down`` (another
process) can stop them. Planning again in the same directory keeps the keys and the
genesis, so a network that was stopped resumes its chain.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from coincurve import PrivateKey
from eth_account import Account

from node.admission import Genesis
from node.client.anvil import free_port
from node.client.chain import RpcChain
from node.core import address_of
from node.devkeys import DEV_FAUCET_KEY
from node.errors import NodeError
from node.p2p.libp2p import multiaddr_for


class NetworkError(NodeError):
    """A local network could not be planned, started or stopped."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # "validator" or "follower"
    address: str
    key_file: str
    data_dir: str
    rpc_port: int
    p2p_port: int
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


def plan_network(
    directory: Path,
    validators: int,
    followers: int = 0,
    chain_id: int = 1337,
    admin: str | None = None,
    permissioned: bool = False,
    alloc: dict[str, int] | None = None,
    block_gas_limit: int = 30_000_000,
    given_keys: Mapping[str, bytes] | None = None,
) -> list[NodeSpec]:
    """Write keys, genesis and peers for a network into ``directory`` (kept if already there).

    ``given_keys``: keys by node name (``validator-0``, ...); the others are drawn at random.

    Raises:
        NetworkError: fewer than one validator, or a directory planned for another size.
    """
    if validators < 1 or followers < 0:
        raise NetworkError("a network needs at least one validator")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    names = [f"validator-{i}" for i in range(validators)] + [f"follower-{i}" for i in range(followers)]
    keys: dict[str, bytes] = {}
    for name in names:
        path = directory / "keys" / f"{name}.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write((given_keys or {}).get(name, secrets.token_bytes(32)).hex() + "\n")
        keys[name] = bytes.fromhex(path.read_text().strip())
    addresses = {name: address_of(PrivateKey(key)) for name, key in keys.items()}
    genesis_path = directory / "genesis.json"
    validator_set = tuple(sorted(addresses[n] for n in names if n.startswith("validator")))
    if genesis_path.exists():
        genesis = Genesis.from_json(json.loads(genesis_path.read_text()))
        if tuple(sorted(genesis.validators)) != validator_set:
            raise NetworkError(f"{directory} holds a network with other validators; use another directory")
    else:
        faucet = Account.from_key(DEV_FAUCET_KEY).address.lower()
        genesis = Genesis(
            chain_id=chain_id,
            alloc={faucet: 10**30, **{a.lower(): wei for a, wei in (alloc or {}).items()}},
            validators=validator_set,
            admin=(admin or faucet).lower(),
            operators=(faucet,),
            permissioned=permissioned,
            timestamp=int(time.time()),
            block_gas_limit=block_gas_limit,
        )
        genesis_path.write_text(json.dumps(genesis.to_json(), indent=2) + "\n")
    specs = [
        NodeSpec(
            name=name,
            role="validator" if name.startswith("validator") else "follower",
            address=addresses[name],
            key_file=str(directory / "keys" / f"{name}.key"),
            data_dir=str(directory / "data" / name),
            rpc_port=free_port(),
            p2p_port=free_port(),
            log=str(directory / "logs" / f"{name}.log"),
        )
        for name in names
    ]
    peers = [{"address": s.address, "multiaddr": multiaddr_for(keys[s.name], "127.0.0.1", s.p2p_port)} for s in specs]
    (directory / "peers.json").write_text(json.dumps({"peers": peers}, indent=2) + "\n")
    return specs


class LocalNetwork:
    """The processes of a planned network.

    Args:
        directory: where :func:`plan_network` wrote the network.
        specs: its nodes.
        round_timeout_s: QBFT's first round timer for every node.
        dev: the nodes answer the ``evm_*`` dev methods (``--dev``).
        detached: the nodes outlive this process (``qkdchain network up``); otherwise they
            are stopped when it exits, should it exit without calling :meth:`down` (a test
            or a benchmark that failed half-way leaves no node running).
    """

    def __init__(
        self, directory: Path, specs: list[NodeSpec], round_timeout_s: float = 2.0, dev: bool = True,
        detached: bool = False,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.specs = specs
        self.round_timeout_s = round_timeout_s
        self.dev = dev
        self.detached = detached
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._exit_hook = False

    def command(self, spec: NodeSpec) -> list[str]:
        return [
            sys.executable, "-P", "-m", "qkdchain.cli", "node",  # -P: the cwd never shadows a module
            "--data-dir", spec.data_dir, "--port", str(spec.rpc_port),
            "--genesis", str(self.directory / "genesis.json"),
            "--validator-key-file", spec.key_file, "--p2p-port", str(spec.p2p_port),
            "--peers", str(self.directory / "peers.json"), "--workers", "0",
            "--round-timeout", str(self.round_timeout_s), *(["--dev"] if self.dev else []),
        ]  # fmt: skip

    def start(self, name: str) -> None:
        spec = self._spec(name)
        if not self.detached and not self._exit_hook:
            atexit.register(self._down_at_exit)
            self._exit_hook = True
        with open(spec.log, "ab") as log:
            self.processes[name] = subprocess.Popen(
                self.command(spec), stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        self._save()

    def up(self, timeout_s: float = 60.0) -> LocalNetwork:
        """Start every node and wait until each answers JSON-RPC and is linked to every other.

        A node that answers JSON-RPC may still be dialling its peers; a load offered then
        waits on the links, so ``up`` returns only once the mesh is whole (``net_peerCount``).

        Raises:
            NetworkError: a node exited, did not answer, or was not linked to all its peers
                within ``timeout_s``.
        """
        for spec in self.specs:
            self.start(spec.name)
        deadline = time.monotonic() + timeout_s
        for spec in self.specs:
            self.wait_ready(spec.name, timeout_s)
        for spec in self.specs:
            self.wait_linked(spec.name, len(self.specs) - 1, max(1.0, deadline - time.monotonic()))
        return self

    def peer_count(self, name: str) -> int:
        """How many peers ``name`` has a live link to (its ``net_peerCount``)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "net_peerCount", "params": []}
        return int(requests.post(self._spec(name).url, json=body, timeout=5).json()["result"], 16)

    def wait_linked(self, name: str, peers: int, timeout_s: float = 60.0) -> None:
        """Wait until ``name`` has live links to ``peers`` peers.

        Raises:
            NetworkError: it exited, or had fewer links when ``timeout_s`` ran out.
        """
        deadline = time.monotonic() + timeout_s
        count = 0
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                count = self.peer_count(name)
                if count >= peers:
                    return
            time.sleep(0.1)
        raise NetworkError(f"{name} is linked to {count} of its {peers} peers after {timeout_s:.0f} s")

    def wait_ready(self, name: str, timeout_s: float = 60.0) -> None:
        spec = self._spec(name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(requests.RequestException):
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
                if requests.post(spec.url, json=body, timeout=2).ok:
                    return
            time.sleep(0.2)
        raise NetworkError(f"{name} did not answer on {spec.url} within {timeout_s} s")

    def _check_alive(self, name: str) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is not None:
            tail = Path(self._spec(name).log).read_text(errors="replace")[-2000:]
            raise NetworkError(f"{name} exited with {process.returncode}:\n{tail}")

    def kill(self, name: str) -> None:
        """``kill -9`` one node (its data directory stays)."""
        process = self.processes.pop(name, None)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        self._save()

    def stop(self, name: str, timeout_s: float = 30.0) -> None:
        """Stop one node cleanly (SIGTERM, then SIGKILL after ``timeout_s``)."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        self._save()

    def down(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        if self._exit_hook:
            atexit.unregister(self._down_at_exit)
            self._exit_hook = False

    def _down_at_exit(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):  # its directory may be gone already
            self.down()

    def urls(self) -> dict[str, str]:
        return {s.name: s.url for s in self.specs}

    def _spec(self, name: str) -> NodeSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise NetworkError(f"no node named {name}")

    def _save(self) -> None:
        state = {
            "nodes": [
                {**asdict(s), "url": s.url, "pid": p.pid if (p := self.processes.get(s.name)) else None}
                for s in self.specs
            ]
        }
        (self.directory / "network.json").write_text(json.dumps(state, indent=2) + "\n")

    def __enter__(self) -> LocalNetwork:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.down()


def stop_recorded(directory: Path, timeout_s: float = 30.0) -> list[str]:
    """Stop the processes ``network.json`` in ``directory`` records (``qkdchain network down``).

    Returns the names of the nodes stopped.

    Raises:
        NetworkError: no network was started from ``directory``.
    """
    path = directory / "network.json"
    if not path.exists():
        raise NetworkError(f"no network.json in {directory}: nothing was started there")
    state = json.loads(path.read_text())
    stopped = []
    for entry in state["nodes"]:
        pid = entry.get("pid")
        if not pid:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(entry["name"])
    deadline = time.monotonic() + timeout_s
    for entry in state["nodes"]:
        pid = entry.get("pid")
        while pid and time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        entry["pid"] = None
    path.write_text(json.dumps(state, indent=2) + "\n")
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a child of ours that exited stays a zombie until reaped; it no longer runs
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    return True


class NetworkChain(RpcChain):
    """A local network of ``validators`` node processes, reached through validator 0's JSON-RPC.

    The contract suite runs on it as on any chain: every transaction goes through QBFT
    among separate processes over libp2p before its receipt exists.
    """

    def __init__(self, validators: int = 4, directory: Path | None = None, round_timeout_s: float = 2.0) -> None:
        self._own_dir = directory is None  # a temp dir made here goes with the network
        self.directory = directory or Path(tempfile.mkdtemp(prefix="qkdchain-network-"))
        self.network = LocalNetwork(self.directory, plan_network(self.directory, validators), round_timeout_s)
        try:
            self.network.up()
            super().__init__(self.network.specs[0].url, name=f"network-{validators}")
        except BaseException:
            self.network.down()
            raise

    def close(self) -> None:
        self.network.down()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


class NodeProcess:
    """One ``qkdchain node`` process on a free loopback port, its log in ``directory``.

    Args:
        directory: holds the data directory and ``node.log`` (JSON lines).
        args: further ``qkdchain node`` arguments (``--genesis``, ``--dev``, ``--open``, ...).
        env: extra environment (e.g. ``QKDCHAIN_VALIDATOR_KEY``).

    Raises:
        NetworkError: the process exited or did not announce its endpoint in time.
    """

    def __init__(self, directory: Path, args: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "node.log"
        command = [sys.executable, "-P", "-m", "qkdchain.cli", "node", "--data-dir", str(directory / "data"),
                   "--port", "0", *args]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                            stderr=log, start_new_session=True)  # fmt: skip
        self.url = self.ws_url = ""
        deadline = time.monotonic() + 60
        while not self.url:
            for line in self.log.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and entry.get("msg") == "node started":
                        self.url, self.ws_url = entry["url"], entry["ws_url"]
            if self.url:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NetworkError(f"the node did not start; its log ends: {self.log.read_text()[-1500:]}")
            time.sleep(0.05)
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
