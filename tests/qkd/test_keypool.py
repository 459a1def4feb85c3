"""The key pool never hands out a bit twice: not across calls, restarts or processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qkd.errors import ConfigError, KeyPoolError, KeyPoolExhausted
from qkd.keypool import KeyPool


def _key(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n, dtype=np.uint8)


def test_take_is_forward_and_exact(tmp_path: Path) -> None:
    pool = KeyPool(tmp_path)
    key = _key(1000, 1)
    assert pool.add_key("rsu-1", b"\x01" * 32, key) == 1000
    a = pool.take("rsu-1", 300)
    b = pool.take("rsu-1", 300)
    assert (a.offset, b.offset) == (0, 300)
    assert np.array_equal(np.concatenate([a.bits, b.bits]), key[:600])
    assert pool.unused_bits("rsu-1") == 400


def test_exhaustion_is_a_named_error_and_changes_nothing(tmp_path: Path) -> None:
    pool = KeyPool(tmp_path)
    pool.add_key("v", b"\x01" * 32, _key(100, 1))
    pool.take("v", 60)
    with pytest.raises(KeyPoolExhausted) as exc:
        pool.take("v", 41)
    assert (exc.value.requested, exc.value.available) == (41, 40)
    assert pool.unused_bits("v") == 40
    assert pool.take("v", 40).offset == 60


def test_short_tail_is_abandoned_not_reused(tmp_path: Path) -> None:
    pool = KeyPool(tmp_path)
    pool.add_key("v", b"\x01" * 32, _key(100, 1))
    pool.add_key("v", b"\x02" * 32, _key(100, 2))
    pool.take("v", 80)
    s = pool.take("v", 50)  # does not fit the 20 left in key 1
    assert (s.session_id, s.offset) == (b"\x02" * 32, 0)
    assert pool.unused_bits("v") == 50
    assert pool.take("v", 10).session_id == b"\x02" * 32  # key 1's tail is gone for good


def test_restart_keeps_the_cursor(tmp_path: Path) -> None:
    KeyPool(tmp_path).add_key("v", b"\x01" * 32, _key(512, 3))
    first = KeyPool(tmp_path).take("v", 100)
    second = KeyPool(tmp_path).take("v", 100)  # a new object, as after a restart
    assert (first.offset, second.offset) == (0, 100)


def test_two_processes_never_share_bits(tmp_path: Path) -> None:
    pool = KeyPool(tmp_path)
    pool.add_key("v", b"\x01" * 32, _key(20_000, 4))
    child = (
        "import json, sys; from pathlib import Path; from qkd.keypool import KeyPool\n"
        "p = KeyPool(Path(sys.argv[1]))\n"
        "print(json.dumps([p.take('v', 50).offset for _ in range(100)]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    mine = [pool.take("v", 50).offset for _ in range(100)]
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    theirs = json.loads(out)
    assert len(set(mine) | set(theirs)) == 200  # every slice distinct
    assert sorted(mine + theirs) == list(range(0, 10_000, 50))


def test_bad_input(tmp_path: Path) -> None:
    pool = KeyPool(tmp_path)
    with pytest.raises(ConfigError):
        pool.take("../etc", 1)
    with pytest.raises(ConfigError):
        pool.add_key("v", b"\x01" * 32, np.zeros(0, dtype=np.uint8))
    pool.add_key("v", b"\x01" * 32, _key(8, 1))
    with pytest.raises(ConfigError):
        pool.add_key("v", b"\x01" * 32, _key(8, 1))
    with pytest.raises(ConfigError):
        pool.take("v", 0)
    (tmp_path / "w.pool.json").write_text("{not json")
    with pytest.raises(KeyPoolError):
        pool.take("w", 1)


def test_take_at_for_the_receiver(tmp_path: Path) -> None:
    from qkd.errors import PadReused

    pool = KeyPool(tmp_path)
    key = _key(300, 5)
    pool.add_key("v", b"\x01" * 32, key)
    got = pool.take_at("v", b"\x01" * 32, 0, 100)
    assert np.array_equal(got.bits, key[:100])
    with pytest.raises(PadReused):
        pool.take_at("v", b"\x01" * 32, 50, 10)  # a replay of used bits
    assert np.array_equal(pool.take_at("v", b"\x01" * 32, 120, 30).bits, key[120:150])  # skipping is fine
    with pytest.raises(KeyPoolExhausted):
        pool.take_at("v", b"\x01" * 32, 150, 151)
    with pytest.raises(KeyPoolExhausted):
        pool.take_at("v", b"\x02" * 32, 0, 1)
