"""No orphans: after ``kill -9`` of the node, its store process and pool workers exit by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import node.core
from node import lifeline
from node.client.anvil import free_port
from node.datadir import DataDirectoryLock
from tests.node.conftest import VALIDATOR_KEY
from tests.node.test_durability import _start
from tests.node.test_store_damage import _genesis_file

GONE_WITHIN_S = 5.0
needs_core_pool = pytest.mark.skipif(
    not hasattr(node.core, "die_with_parent"), reason="node/core.py does not arm its pool workers yet (issue 11)"
)

# a node's process tree, without the node: the data directory lock, the store process and a
# forked pool, wired as node/core.py wires them
_NODE_LIKE = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from node.datadir import DataDirectoryLock
from node.lifeline import die_with_parent, lifeline_args
from node.store import StoreWriter
data = Path(sys.argv[1])
lock = DataDirectoryLock.acquire(data)
writer = StoreWriter(data / "chain.sqlite", lock)
pool = ProcessPoolExecutor(2, initializer=die_with_parent, initargs=lifeline_args())
list(pool.map(abs, [1, 2]))
print("ready", flush=True)
time.sleep(120)
"""

_PARENT_OF_ONE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
print(child.pid, flush=True)
time.sleep(120)
"""

_ARMED_CHILD = """
import os, sys, time
from node.lifeline import die_with_parent
die_with_parent(os.getppid(), sys.argv[1] == "kernel")
print("armed", flush=True)
time.sleep(120)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from ``/proc/<pid>/stat``; ``None`` once the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _descendants(pid: int) -> list[int]:
    parents = {p: s[1] for p in (int(d) for d in os.listdir("/proc") if d.isdigit()) if (s := _stat(p)) is not None}
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # an exited orphan that nobody reaped is gone


def _assert_all_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    assert not alive, f"left running: {[(p, _command(p)) for p in alive]}"


def _kill_9(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("how", ["kernel", "polling"])
def test_an_armed_child_exits_when_its_parent_is_killed(how: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_OF_ONE, _ARMED_CHILD, how], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "armed"  # the child shares the parent's stdout
    finally:
        _kill_9(parent)
    _assert_all_gone([child])


def test_the_kernel_signal_is_only_armed_from_the_main_thread() -> None:
    assert lifeline.lifeline_args() == (os.getpid(), True)
    seen: list[tuple[int, bool]] = []
    worker = threading.Thread(target=lambda: seen.append(lifeline.lifeline_args()))
    worker.start()
    worker.join()
    assert seen == [(os.getpid(), False)]  # Linux would signal when that thread ends


def test_forked_children_do_not_keep_the_nodes_own_descriptors() -> None:
    read, write = os.pipe()
    lifeline.keep_from_forks(write)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the write end must be gone, so the reader can see end-of-file
            os._exit(0 if os.fstat(write).st_ino != os.fstat(read).st_ino else 1)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        lifeline.forget(write)
        os.close(write)
    assert os.read(read, 1) == b""  # no forked child holds the write end
    os.close(read)


def test_kill_9_of_a_node_like_process_leaves_no_children_and_no_lock(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _NODE_LIKE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        children = _descendants(parent.pid)
        assert len(children) == 3  # the store process and two pool workers
    finally:
        _kill_9(parent)
    _assert_all_gone(children)
    DataDirectoryLock.acquire(tmp_path, leftover_grace_s=0).release()


def test_kill_9_of_a_node_leaves_no_store_process(tmp_path: Path) -> None:
    port = free_port()
    node_process = _start(tmp_path / "data", _genesis_file(tmp_path), port)
    try:
        children = _descendants(node_process.pid)
        assert any("node.store" in _command(p) for p in children)
    finally:
        _kill_9(node_process)
    _assert_all_gone(children)


@needs_core_pool
def test_kill_9_of_a_node_with_pool_workers_leaves_no_children(tmp_path: Path) -> None:
    port, genesis_file = free_port(), _genesis_file(tmp_path)
    env = dict(os.environ, QKDCHAIN_VALIDATOR_KEY=VALIDATOR_KEY.hex())
    node_process = subprocess.Popen(
        [sys.executable, "-m", "qkdchain.cli", "node", "--data-dir", str(tmp_path / "data"), "--port", str(port),
         "--genesis", str(genesis_file), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_descendants(node_process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _descendants(node_process.pid)
        assert len(children) >= 3  # the store process and the workers
    finally:
        _kill_9(node_process)
    _assert_all_gone(children)
