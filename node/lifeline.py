"""Child processes that die with the node: no orphans after a ``kill -9``.

A child of the node (the store process, the signature-recovery pool workers) calls
:func:`die_with_parent` first thing. On Linux it asks the kernel for ``SIGKILL`` when
its parent goes (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread polls
``os.getppid()`` and exits once the process was re-parented. The kernel signal is only
requested when the child was created by the parent's *main* thread: Linux sends it when
the creating *thread* ends, and a node built on a short-lived thread must keep its
children.

Descriptors that belong to the node alone (the store pipes, the data directory lock)
are registered with :func:`keep_from_forks` and let go (``/dev/null`` put in their
place) in every child forked from the node (``multiprocessing``'s fork start method
forks the pool workers after the store pipes exist): a worker holding the store's
request pipe would keep the store process from ever seeing end-of-file, and one
holding the lock would keep the directory locked.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

POLL_S = 0.25  # how soon a child notices, by polling, that its parent is gone
_PR_SET_PDEATHSIG = 1

_parent_only: dict[int, tuple[int, int]] = {}  # fd -> (st_dev, st_ino), closed in forked children
_registry_lock = threading.Lock()


def lifeline_args() -> tuple[int, bool]:
    """``(parent pid, whether the kernel signal is safe)`` for a child created from this thread.

    Pass them to :func:`die_with_parent` in the child, e.g.
    ``ProcessPoolExecutor(n, initializer=die_with_parent, initargs=lifeline_args())``.
    The pool must then fork its workers from this same thread (its first ``submit``/``map``).
    """
    return os.getpid(), threading.current_thread() is threading.main_thread()


def die_with_parent(parent_pid: int, kernel_signal: bool = True) -> None:
    """Make this process exit when ``parent_pid`` does (call it in the child; never raises).

    Args:
        parent_pid: the process that must outlive this one.
        kernel_signal: also ask Linux for ``SIGKILL`` on the parent's death (immediate);
            only true when the creating thread lives as long as the parent process.
    """
    if kernel_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="lifeline", daemon=True).start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)  # whatever is half done stays undone: SQLite rolls back an open transaction


def keep_from_forks(fd: int) -> None:
    """Close ``fd`` in every child forked from this process from now on (until :func:`forget`)."""
    st = os.fstat(fd)
    with _registry_lock:
        _parent_only[fd] = (st.st_dev, st.st_ino)


def forget(fd: int) -> None:
    """Stop closing ``fd`` in forked children; call it before closing ``fd``."""
    with _registry_lock:
        _parent_only.pop(fd, None)


def _close_parent_only() -> None:
    if not _parent_only:
        return
    # /dev/null over the descriptor rather than a close: the number stays taken, so the
    # inherited Python objects that own it can never close an unrelated file later
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd, identity in list(_parent_only.items()):
            with contextlib.suppress(OSError):
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == identity:  # never an unrelated file that reused the number
                    os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)
    _parent_only.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_parent_only)
