"""What every client suite yields: named operations that each pass or fail, run one by one.

The JavaScript suites (``ethers_ops.js``, ``viem_ops.js``) print one JSON line per operation;
the cast suite (``cast_ops.py``) runs in Python. Both come back as :class:`OpResult` lists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / ".tools" / "node_modules"
CLIENTS_DIR = Path(__file__).resolve().parent

CHAINS = ("anvil", "node")
T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """One chain under test: where it answers and the funded key the suites sign with."""

    name: str
    rpc_url: str
    ws_url: str
    chain_id: int
    private_key: str


@dataclass(frozen=True)
class OpResult:
    """One operation of one tool on one chain; ``detail`` is the value seen or the error."""

    name: str
    ok: bool
    detail: str


Results = dict[str, dict[str, list[OpResult]]]  # tool -> chain -> its results, in order
RESULTS = pytest.StashKey[Results]()


def summary_table(results: Results) -> list[str]:
    """Operations passed per tool and chain, as text lines."""
    lines = [f"{'client suite':<14}" + "".join(f"{chain:>10}" for chain in CHAINS)]
    for tool, by_chain in results.items():
        cells = [f"{sum(r.ok for r in by_chain[c])}/{len(by_chain[c])}" for c in CHAINS]
        lines.append(f"{tool:<14}" + "".join(f"{cell:>10}" for cell in cells))
    return lines


class ClientSuiteError(Exception):
    """A suite as a whole could not run (a crash or no output), as opposed to an operation failing."""


class OpFailed(Exception):
    """An operation's check did not hold; the message says what was seen."""


class Fixtures:
    """Values built on first use and shared by the operations that need them; a fixture that
    failed fails every later operation that needs it, with its reason, without being retried."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._failed: dict[str, str] = {}

    def need(self, name: str, build: Callable[[], T]) -> T:
        if name in self._failed:
            raise OpFailed(f"fixture {name} failed: {self._failed[name]}")
        if name not in self._made:
            try:
                self._made[name] = build()
            except (OpFailed, subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
                self._failed[name] = str(exc)
                raise OpFailed(f"fixture {name} failed: {exc}") from exc
        value: T = self._made[name]
        return value


def run_ops(ops: Sequence[tuple[str, Callable[[], object]]]) -> list[OpResult]:
    """Run each operation in turn; one that raises is recorded as failed and the next runs.

    Each operation bounds its own time (its subprocesses carry timeouts).
    """
    results = []
    for name, op in ops:
        try:
            value = op()
            results.append(OpResult(name, True, "" if value is None else str(value)[:300]))
        except (OpFailed, subprocess.SubprocessError, OSError, ValueError, KeyError, IndexError) as exc:
            results.append(OpResult(name, False, " ".join(str(exc).split())[:500]))
    return results


def node_js() -> str | None:
    """The Node.js binary on PATH, if any."""
    return shutil.which("node")


def run_js_suite(script: str, endpoint: Endpoint, artifact_file: Path, timeout_s: float = 300.0) -> list[OpResult]:
    """Run ``tests/clients/<script>`` against ``endpoint`` and read its result lines.

    Raises:
        ClientSuiteError: Node.js is missing, the script crashed or printed no result.
    """
    binary = node_js()
    if binary is None:
        raise ClientSuiteError("node (Node.js) is not on PATH")
    command = [
        binary, str(CLIENTS_DIR / script), "--rpc", endpoint.rpc_url, "--ws", endpoint.ws_url,
        "--key", endpoint.private_key, "--artifact", str(artifact_file), "--chain-id", str(endpoint.chain_id),
        "--timeout-ms", "15000", "--event-ms", "6000",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ClientSuiteError(f"{script} on {endpoint.name} ran over {timeout_s} s") from exc
    results = [
        OpResult(str(line["name"]), bool(line["ok"]), str(line["detail"]))
        for line in map(json.loads, done.stdout.splitlines())
    ]
    if done.returncode != 0 or not results:
        raise ClientSuiteError(
            f"{script} on {endpoint.name} exited {done.returncode} with {len(results)} results: {done.stderr[-2000:]}"
        )
    return results
