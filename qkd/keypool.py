"""A persistent pool of final keys per peer, consumed strictly forward.

One JSON file per peer holds the keys (in the order they were agreed) and a cursor
per key. A request is served from the oldest key that still has enough bits; the
unused tail of any older key is abandoned, never served later, so offsets within a
session only move forward, exactly as ``recordMessage`` demands on chain.

The cursor is made durable (write to a temporary file, fsync, rename, fsync the
directory) *before* the bits are returned, under an exclusive ``flock``: a crash
may waste bits but can never hand the same bits out twice, across threads or
processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qkd.errors import ConfigError, KeyPoolError, KeyPoolExhausted, PadReused

_PEER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class PadSlice:
    """Bits handed out once: ``bits`` are key bits ``[offset, offset + len)`` of ``session_id``."""

    peer: str
    session_id: bytes
    offset: int
    bits: np.ndarray


class KeyPool:
    """Key pools of one agent, stored under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, peer: str) -> Path:
        if not _PEER.match(peer):
            raise ConfigError(f"peer name {peer!r} must match {_PEER.pattern}")
        return self.directory / f"{peer}.pool.json"

    @contextmanager
    def _locked(self, peer: str) -> Iterator[dict[str, Any]]:
        path = self._path(peer)
        with open(path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read(path)
                yield state
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {"version": 1, "keys": []}
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyPoolError(f"cannot read key pool {path}: {exc}") from exc
        if state.get("version") != 1 or not isinstance(state.get("keys"), list):
            raise KeyPoolError(f"{path} is not a version-1 key pool")
        return state

    def _write(self, peer: str, state: dict[str, Any]) -> None:
        path = self._path(peer)
        tmp = path.with_suffix(f".tmp.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def add_key(self, peer: str, session_id: bytes, bits: np.ndarray) -> int:
        """Append a final key for ``peer``; returns the bits now unused for that peer.

        Raises:
            ConfigError: empty key, or a session already in the pool.
        """
        if bits.size == 0:
            raise ConfigError("cannot add an empty key")
        with self._locked(peer) as state:
            if any(k["session"] == session_id.hex() for k in state["keys"]):
                raise ConfigError(f"session 0x{session_id.hex()} is already in the pool of {peer}")
            state["keys"].append(
                {
                    "session": session_id.hex(),
                    "bits": int(bits.size),
                    "data": np.packbits(bits.astype(np.uint8)).tobytes().hex(),
                    "cursor": 0,
                }
            )
            self._write(peer, state)
            return self._unused(state)

    def take(self, peer: str, nbits: int) -> PadSlice:
        """Hand out ``nbits`` never-used bits from one key of ``peer``.

        Raises:
            ConfigError: ``nbits`` is not positive.
            KeyPoolExhausted: no key has ``nbits`` unused bits left.
        """
        if nbits <= 0:
            raise ConfigError("nbits must be positive")
        with self._locked(peer) as state:
            keys = state["keys"]
            for i, key in enumerate(keys):
                if key["bits"] - key["cursor"] >= nbits:
                    offset = key["cursor"]
                    for older in keys[:i]:  # abandon tails that are too short
                        older["cursor"] = older["bits"]
                    key["cursor"] = offset + nbits
                    self._write(peer, state)  # durable before anything leaves
                    packed = np.frombuffer(bytes.fromhex(key["data"]), dtype=np.uint8)
                    bits = np.unpackbits(packed)[offset : offset + nbits]
                    return PadSlice(peer, bytes.fromhex(key["session"]), offset, bits)
            largest = max((k["bits"] - k["cursor"] for k in keys), default=0)
            raise KeyPoolExhausted(peer, nbits, largest)

    def take_at(self, peer: str, session_id: bytes, offset: int, nbits: int) -> PadSlice:
        """Hand out bits ``[offset, offset + nbits)`` of one session's key: the receiving
        side of a message whose sender chose the offset. Skipping ahead is allowed
        (the skipped bits are gone); going back is not.

        Raises:
            ConfigError: ``nbits`` not positive or ``offset`` negative.
            KeyPoolExhausted: no such session, or the range passes the key's end.
            PadReused: the range starts before the key's cursor (bits already used).
        """
        if nbits <= 0 or offset < 0:
            raise ConfigError("nbits must be positive and offset non-negative")
        with self._locked(peer) as state:
            for key in state["keys"]:
                if key["session"] != session_id.hex():
                    continue
                if offset < key["cursor"]:
                    raise PadReused(peer, session_id, offset, int(key["cursor"]))
                if offset + nbits > key["bits"]:
                    raise KeyPoolExhausted(peer, nbits, int(key["bits"]) - offset)
                key["cursor"] = offset + nbits
                self._write(peer, state)
                packed = np.frombuffer(bytes.fromhex(key["data"]), dtype=np.uint8)
                return PadSlice(peer, session_id, offset, np.unpackbits(packed)[offset : offset + nbits])
            raise KeyPoolExhausted(peer, nbits, 0)

    def unused_bits(self, peer: str) -> int:
        with self._locked(peer) as state:
            return self._unused(state)

    @staticmethod
    def _unused(state: dict[str, Any]) -> int:
        return sum(int(k["bits"]) - int(k["cursor"]) for k in state["keys"])
