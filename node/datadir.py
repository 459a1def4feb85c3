"""One node per data directory: an exclusive ``flock`` on ``<data dir>/node.lock``.

The kernel drops a ``flock`` when the last descriptor of the locked file closes, so a
node that dies (even by ``kill -9``) leaves no stale lock: there is nothing to clean
up by hand. The store process keeps a copy of the descriptor (see
:class:`node.store.StoreWriter`), so the directory stays locked until every process
that may write to it is gone. The file holds the owner's pid, for the refusal message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from node import lifeline
from node.errors import NodeError

LOCK_FILE = "node.lock"
LEFTOVER_GRACE_S = 5.0  # how long to wait for the children of a node that died to exit


class DataDirectoryLocked(NodeError):
    """Another node (or what is left of one) holds the data directory.

    Attributes:
        directory: the data directory.
        pid: the process that locked it, if it could be read; it may have died while its
            children still hold the lock (``owner_alive`` is then false).
    """

    def __init__(self, directory: Path, pid: int | None, owner_alive: bool) -> None:
        self.directory, self.pid, self.owner_alive = directory, pid, owner_alive
        who = "another process" if pid is None else f"process {pid}"
        if pid is not None and not owner_alive:
            who = f"processes left over from node {pid}, which has exited"
        super().__init__(
            f"data directory {directory} is in use by {who}; stop that node first "
            f"(one node per data directory; the lock is {directory / LOCK_FILE})"
        )


class DataDirectoryLock:
    """An exclusive lock on a data directory, held until :meth:`release` (or this process dies).

    Use :meth:`acquire`; the lock is also a context manager.
    """

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path, leftover_grace_s: float = LEFTOVER_GRACE_S) -> DataDirectoryLock:
        """Lock ``directory`` (created if missing) for this process.

        If the recorded owner has exited but its children still hold the lock (they exit
        on their own within a second of their parent's death), wait up to
        ``leftover_grace_s`` for them before refusing.

        Raises:
            DataDirectoryLocked: another live node, or its leftovers after the grace, holds it.
            OSError: the directory or the lock file cannot be created.
        """
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + leftover_grace_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                pid = _recorded_pid(fd)
                alive = pid is None or _alive(pid)
                if alive or time.monotonic() >= deadline:
                    raise DataDirectoryLocked(directory, pid, alive)
                time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        lifeline.keep_from_forks(fd)
        return cls(directory, fd)

    def fileno(self) -> int:
        """The locked descriptor (to hand to a child process that must hold the lock too).

        Raises:
            ValueError: the lock was released.
        """
        if self._fd is None:
            raise ValueError(f"the lock on {self.directory} was released")
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the directory up (idempotent). Children given :meth:`fileno` hold it until they exit."""
        fd, self._fd = self._fd, None
        if fd is not None:
            lifeline.forget(fd)
            os.close(fd)  # the flock goes with the last descriptor; no unlink (a racing opener
            # could lock an unlinked file while a third process locks a new one)

    def __enter__(self) -> DataDirectoryLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _recorded_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None  # not written yet, or by something else


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
