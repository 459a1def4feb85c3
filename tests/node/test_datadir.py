"""One node per data directory: a second one is refused by name, and a dead node leaves no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import node.core
from node.client.anvil import free_port
from node.core import Node
from node.datadir import LOCK_FILE, DataDirectoryLock, DataDirectoryLocked
from tests.node.conftest import VALIDATOR_KEY, key_of, make_genesis
from tests.node.test_durability import _start
from tests.node.test_store_damage import _acknowledged_blocks, _genesis_file, _refused_start

needs_core_lock = pytest.mark.skipif(
    not hasattr(node.core, "DataDirectoryLock"), reason="node/core.py does not lock its data directory yet (issue 11)"
)

_HOLDER = """
import sys, time
from pathlib import Path
from node.datadir import DataDirectoryLock
lock = DataDirectoryLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""

_LEAVES_A_CHILD_HOLDING_IT = """
import os, subprocess, sys
from pathlib import Path
from node.datadir import DataDirectoryLock
lock = DataDirectoryLock.acquire(Path(sys.argv[1]))
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"], pass_fds=(lock.fileno(),))
os._exit(0)
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)


def test_a_second_lock_is_refused_naming_the_holder_and_released_on_close(tmp_path: Path) -> None:
    with DataDirectoryLock.acquire(tmp_path / "data") as first:
        with pytest.raises(DataDirectoryLocked) as refused:
            DataDirectoryLock.acquire(tmp_path / "data")
        assert refused.value.directory == tmp_path / "data" and refused.value.pid == os.getpid()
        assert refused.value.owner_alive and f"in use by process {os.getpid()}" in str(refused.value)
        assert first.held
    assert not first.held
    DataDirectoryLock.acquire(tmp_path / "data").release()


def test_kill_9_of_the_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = _python(_HOLDER, str(tmp_path))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirectoryLocked) as refused:
            DataDirectoryLock.acquire(tmp_path)
        assert refused.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock
    DataDirectoryLock.acquire(tmp_path).release()


def test_children_left_by_a_dead_owner_are_waited_for_then_named(tmp_path: Path) -> None:
    owner = _python(_LEAVES_A_CHILD_HOLDING_IT, str(tmp_path))
    assert owner.wait(timeout=60) == 0
    with pytest.raises(DataDirectoryLocked) as refused:
        DataDirectoryLock.acquire(tmp_path, leftover_grace_s=0)
    assert refused.value.pid == owner.pid and not refused.value.owner_alive
    assert f"left over from node {owner.pid}" in str(refused.value)
    DataDirectoryLock.acquire(tmp_path, leftover_grace_s=30).release()  # the child exits after 1.5 s


@needs_core_lock
def test_a_second_node_in_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    genesis = make_genesis(key_of("ta"), [])
    first = Node(tmp_path, genesis, VALIDATOR_KEY, workers=0)
    try:
        with pytest.raises(DataDirectoryLocked):
            Node(tmp_path, None, VALIDATOR_KEY, workers=0)
    finally:
        first.close()
    with Node(tmp_path, None, VALIDATOR_KEY, workers=0) as again:
        assert again.head.number == 0


@needs_core_lock
def test_a_second_node_process_refuses_to_start_and_the_first_keeps_working(tmp_path: Path) -> None:
    genesis_file, data_dir, port = _genesis_file(tmp_path), tmp_path / "data", free_port()
    first = _start(data_dir, genesis_file, port)
    try:
        second = _refused_start(data_dir, genesis_file)
        text = " ".join(second.stderr.split())
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"is in use by process {first.pid}" in text and "error:" in text
        assert _acknowledged_blocks(f"http://127.0.0.1:{port}", 2) == 2  # sealed, durable, readable
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
