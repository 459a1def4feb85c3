"""Run anvil (Foundry's Ethereum node, shipped in the npm package
``@foundry-rs/anvil-linux-amd64``) on a free loopback port, for cross-checks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from node.client.chain import RpcChain
from node.errors import ChainUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "anvil"


def find_anvil() -> Path:
    """Locate the anvil binary: ``$QKDCHAIN_ANVIL``, the bootstrap's npm copy, or PATH.

    Raises:
        ChainUnavailable: no anvil binary anywhere.
    """
    candidates = [os.environ.get("QKDCHAIN_ANVIL"), str(BUNDLED), shutil.which("anvil")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ChainUnavailable("anvil not found: run ./scripts/dev setup (installs it from npm) or set QKDCHAIN_ANVIL")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilProcess:
    """An anvil child process on 127.0.0.1; use as a context manager.

    Raises:
        ChainUnavailable: anvil is missing, exited, or did not answer in time.
    """

    def __init__(
        self,
        port: int | None = None,
        chain_id: int = 31337,
        startup_timeout_s: float = 30.0,
        steps_tracing: bool = False,
    ) -> None:
        self.steps_tracing = steps_tracing  # --steps-tracing: debug_trace* return every step
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chain_id = chain_id
        self._timeout = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RpcChain:
        binary = find_anvil()
        self._proc = subprocess.Popen(
            [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--chain-id",
                str(self.chain_id),
                "--silent",
                *(["--steps-tracing"] if self.steps_tracing else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self._timeout
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ChainUnavailable(f"anvil exited with code {self._proc.returncode}: {err.strip()}")
            try:
                return RpcChain(self.url, name="anvil")
            except ChainUnavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ChainUnavailable("anvil is not running")
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> RpcChain:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
