"""ethers v6, viem and Foundry cast against our node and anvil side by side (issues #11, #13).

Each tool runs its whole list of named operations (``ethers_ops.js``, ``viem_ops.js``,
``cast_ops.py``) on anvil and on a ``qkdchain node`` process at once, with the same funded
key (anvil's first dev account, which a new dev chain of ours funds and makes its admin, so
the first registry deployed is the node's allow list). Every operation must pass on anvil (or
the operation is wrong), and every operation that passes on anvil must pass on the node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from contracts import load_artifact
from node.client.anvil import AnvilProcess
from node.devkeys import DEV_FAUCET_KEY
from node.errors import ChainUnavailable
from node.launcher import NodeProcess
from tests.clients._ops import (
    NODE_MODULES,
    RESULTS,
    Endpoint,
    OpResult,
    Results,
    node_js,
    run_js_suite,
    summary_table,
)
from tests.clients.cast_ops import CAST, run_cast_suite

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

TOOLS = ("ethers", "viem", "cast")
# Operations that pass on anvil and are known to fail on the node, each with the open issue that
# builds it. The test fails if any other operation differs, and also when a listed one starts to
# pass (then it must leave this list): the list only shrinks.
KNOWN_GAPS: dict[str, dict[str, str]] = {"ethers": {}, "viem": {}, "cast": {}}
# any key but the well-known dev validator key, so the node does not warn about it
VALIDATOR_KEY = "0x" + "5e" * 32


def _missing(tool: str) -> str | None:
    """Why ``tool`` cannot run here, or None; ``./scripts/dev setup`` installs them all."""
    if tool == "cast":
        return None if CAST.is_file() else f"{CAST} is missing: run ./scripts/dev setup"
    if node_js() is None:
        return "Node.js (node) is not on PATH"
    if not (NODE_MODULES / tool / "package.json").is_file():
        return f"{tool} is not in .tools/node_modules: run ./scripts/dev setup"
    return None


def _rpc(url: str, method: str) -> object:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=5)
    return answer.json()["result"]


@pytest.fixture(scope="module")
def artifact_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clients") / "KeyRegistry.json"
    path.write_text(json.dumps(load_artifact().to_json()))
    return path


@pytest.fixture(scope="module")
def anvil() -> Iterator[Endpoint]:
    process = AnvilProcess()
    try:
        process.start()
    except ChainUnavailable as exc:
        pytest.skip(str(exc))
    try:
        url = process.url
        yield Endpoint("anvil", url, url.replace("http://", "ws://"), process.chain_id, DEV_FAUCET_KEY)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """``qkdchain node`` as a process: a new permissioned dev chain whose admin is the dev account."""
    directory = tmp_path_factory.mktemp("node")
    with NodeProcess(directory, ("--workers", "0"), env={"QKDCHAIN_VALIDATOR_KEY": VALIDATOR_KEY}) as process:
        chain_id = int(str(_rpc(process.url, "eth_chainId")), 16)
        # WebSocket is served on the HTTP port, at /
        yield Endpoint("node", process.url, process.ws_url + "/", chain_id, DEV_FAUCET_KEY)


@pytest.fixture(scope="module")
def summary(pytestconfig: pytest.Config) -> Results:
    """Every tool's results, printed as a table at the end of the run (``conftest.py``)."""
    return pytestconfig.stash.setdefault(RESULTS, {})


def _run(tool: str, endpoint: Endpoint, artifact_file: Path) -> list[OpResult]:
    if tool == "cast":
        return run_cast_suite(endpoint, load_artifact())
    return run_js_suite(f"{tool}_ops.js", endpoint, artifact_file)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_operation_that_passes_on_anvil_passes_on_the_node(
    tool: str, anvil: Endpoint, node: Endpoint, artifact_file: Path, summary: Results
) -> None:
    reason = _missing(tool)
    if reason is not None:
        pytest.skip(reason)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {e.name: pool.submit(_run, tool, e, artifact_file) for e in (anvil, node)}
        results = {name: run.result() for name, run in runs.items()}
    summary[tool] = results
    on_anvil, on_node = results["anvil"], results["node"]
    assert [r.name for r in on_anvil] == [r.name for r in on_node]
    wrong = [r for r in on_anvil if not r.ok]
    assert not wrong, f"{tool}: operations that fail on anvil itself (fix or drop them):\n" + "\n".join(
        f"  {r.name}: {r.detail}" for r in wrong
    )
    known = KNOWN_GAPS[tool]
    differ = [n for a, n in zip(on_anvil, on_node, strict=True) if a.ok and not n.ok and n.name not in known]
    closed = [n.name for n in on_node if n.ok and n.name in known]
    assert not closed, f"{tool}: known gaps that pass now; take them out of KNOWN_GAPS: {closed}"
    assert not differ, (
        f"{tool}: {len(differ)} of {len(on_anvil)} operations pass on anvil but fail on the node:\n"
        + "\n".join(f"  {r.name}: {r.detail}" for r in differ)
        + "\n"
        + "\n".join(summary_table(summary))
    )
