"""Damage in a data directory is refused on load, with a named error and a recovery hint.

Store-level tests build a chain of real blocks (sealed headers, state writes) straight
into a :class:`Store`; node-level tests damage the data directory of a real
``qkdchain node`` process (``kill -9``, then the WAL truncated or deleted; a bit flipped
in a stored balance; garbage pages) and check that the restart exits with a one-line
error, never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from coincurve import PrivateKey

from contracts import load_artifact
from node.block import Block, genesis_block, seal
from node.client.anvil import free_port
from node.engine.base import Account, StateDiff
from node.hashing import keccak
from node.store import (
    EMPTY_CODE_HASH,
    AcknowledgedBlocksMissing,
    DatabaseCorrupt,
    StateDigestMismatch,
    Store,
    StoreDamaged,
    StoreError,
    _fold,
)
from tests.node.conftest import VALIDATOR_KEY, address_of, key_of, make_genesis, tx
from tests.node.test_durability import _rpc, _start

KEY = PrivateKey(keccak(b"store-damage proposer"))
CONTRACT = "0x" + "c0" * 20
CODE = bytes(range(256)) * 4
PAGE = 4096


def _build(store: Store, blocks: int, seed: int = 7) -> tuple[list[Block], StateDiff]:
    """Genesis (100 funded accounts) and ``blocks`` blocks that overwrite accounts and storage,
    add new slots and deploy code once; returns the blocks and the state they leave."""
    rng = random.Random(seed)
    addresses = [f"0x{rng.getrandbits(160):040x}" for _ in range(100)]
    state = StateDiff(accounts={a: Account(0, rng.getrandbits(80), EMPTY_CODE_HASH) for a in addresses})
    block = genesis_block(1_700_000_000, 30_000_000, 10**9, state.commitment(), ())
    store.append(block, [], [], state)
    chain = [block]
    for n in range(1, blocks + 1):
        diff = StateDiff()
        for a in rng.sample(addresses, 5):
            diff.accounts[a] = Account(n, rng.getrandbits(80), EMPTY_CODE_HASH)
        for _ in range(5):  # half overwrite earlier slots, half are new
            diff.storage[(CONTRACT, rng.randrange(8) if rng.random() < 0.5 else rng.getrandbits(256))] = (
                rng.getrandbits(256)
            )
        if n == 1:
            diff.code[keccak(CODE)] = CODE
            diff.accounts[CONTRACT] = Account(1, 0, keccak(CODE))
        block = seal(KEY, block.hash, n, 1_700_000_000 + n, 30_000_000, 10**9, [], diff.commitment(), ())
        store.append(block, [], [], diff)
        state.update(diff)
        chain.append(block)
    return chain, state


def _crash_image(source: Path, target: Path) -> Path:
    """What a ``kill -9`` leaves: the database, its WAL and the head mark as they are now."""
    target.mkdir()
    for name in ("chain.sqlite", "chain.sqlite-wal", "chain.head"):
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return target / "chain.sqlite"


def _flip_each(path: Path, needle: bytes, bit: int = 0) -> None:
    """Flip one bit of every copy of ``needle`` in the file: the state row and its history rows
    (history is kept per block, so a balance is stored more than once)."""
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, "the value must be in the file"
    while at >= 0:
        data[at + len(needle) - 1] ^= 1 << bit
        at = data.find(needle, at + 1)
    path.write_bytes(bytes(data))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "live" / "chain.sqlite")
    yield store
    store.close()


# -- lost WAL frames --


def test_a_crash_image_with_its_whole_wal_opens_with_every_block(live: Store, tmp_path: Path) -> None:
    chain, state = _build(live, 6)
    assert (live.path.parent / "chain.sqlite-wal").stat().st_size > 0
    store = Store(_crash_image(live.path.parent, tmp_path / "image"))
    assert store.head() == chain[-1]
    assert store.load_state() == state
    store.close()


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_lost_wal_frames_are_refused_naming_the_missing_blocks(live: Store, tmp_path: Path, damage: str) -> None:
    chain, _ = _build(live, 6)
    path = _crash_image(live.path.parent, tmp_path / "image")
    wal = path.with_name("chain.sqlite-wal")
    if damage == "deleted":
        wal.unlink()
    else:
        os.truncate(wal, wal.stat().st_size - 100)  # the last commit frame is torn: SQLite drops that block
    with pytest.raises(AcknowledgedBlocksMissing) as refused:
        Store(path)
    assert refused.value.acknowledged == chain[-1].number
    assert refused.value.head is None if damage == "deleted" else refused.value.head == chain[-2].number
    assert "To recover: restore" in str(refused.value) and refused.value.path == path


def test_a_deleted_head_mark_is_refused(live: Store) -> None:
    _build(live, 2)
    live.close()
    live.path.with_suffix(".head").unlink()
    with pytest.raises(StoreDamaged, match=r"head mark .* was deleted"):
        Store(live.path)


def test_a_torn_head_mark_falls_back_to_the_other_slot(live: Store) -> None:
    chain, _ = _build(live, 3)
    live.close()
    mark = live.path.with_suffix(".head")
    data = bytearray(mark.read_bytes())
    data[64 + 20] ^= 0xFF  # block 3's slot (3 % 2 == 1) torn; block 2 stays in slot 0
    mark.write_bytes(bytes(data))
    store = Store(live.path)
    assert store.mark is not None and store.mark.number == 2 and store.head() == chain[-1]
    store.close()
    mark.write_bytes(bytes(128))
    with pytest.raises(StoreDamaged, match="unreadable"):
        Store(live.path)


# -- flipped bits in state --


def test_the_incremental_state_digest_equals_a_full_fold(live: Store) -> None:
    _build(live, 40, seed=11)
    db = live._db()
    assert int(json.loads(db.execute("SELECT value FROM meta WHERE key = 'state_digest'").fetchone()[0]), 16) == _fold(
        db
    )


def test_a_bit_flipped_in_a_stored_balance_is_refused(live: Store) -> None:
    _, state = _build(live, 4)
    live.close()  # checkpointed into the main file
    account = next(iter(state.accounts.values()))
    _flip_each(live.path, account.balance.to_bytes(32, "big"))
    store = Store(live.path)
    with pytest.raises(StateDigestMismatch, match="differ from what the blocks wrote"):
        store.load_state()
    store.close()


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE accounts SET nonce = nonce + 1 WHERE address = (SELECT MIN(address) FROM accounts)",
        "UPDATE accounts SET code_hash = zeroblob(32) WHERE address = '{contract}'",
        "UPDATE storage SET value = zeroblob(32) WHERE slot = (SELECT MAX(slot) FROM storage)",
        "DELETE FROM storage WHERE slot = (SELECT MIN(slot) FROM storage)",
        "INSERT INTO storage VALUES ('{contract}', randomblob(32), zeroblob(32))",
        "UPDATE code SET code = zeroblob(1024)",
        "DELETE FROM code",
        "UPDATE meta SET value = '\"00\"' WHERE key = 'state_digest'",
        "DELETE FROM meta WHERE key = 'state_digest'",
    ],
)
def test_any_changed_state_row_is_refused(live: Store, change: str) -> None:
    _build(live, 4)
    live.close()
    with sqlite3.connect(live.path) as db:  # SQLite reads these rows fine: only the digest can tell
        db.execute(change.format(contract=CONTRACT))
    store = Store(live.path)
    with pytest.raises(StateDigestMismatch):
        store.load_state()
    store.close()


def test_a_store_from_before_digests_is_adopted_then_checked(live: Store) -> None:
    _, state = _build(live, 3)
    live.close()
    with sqlite3.connect(live.path) as db:
        db.execute("DELETE FROM meta WHERE key = 'state_digest'")
    live.path.with_suffix(".head").unlink()  # as written by an older qkdchain: no digest, no mark
    store = Store(live.path)
    assert store.load_state() == state  # nothing to check against yet
    more = StateDiff(accounts={CONTRACT: Account(2, 5, keccak(CODE))})
    head = store.head()
    assert head is not None
    block = seal(KEY, head.hash, 4, 1_700_000_004, 30_000_000, 10**9, [], more.commitment(), ())
    store.append(block, [], [], more)  # establishes the digest (a full fold) and the mark
    store.close()
    with sqlite3.connect(live.path) as db:
        db.execute("UPDATE accounts SET nonce = nonce + 1")
    store = Store(live.path)
    assert store.mark is not None and store.mark.number == 4
    with pytest.raises(StateDigestMismatch):
        store.load_state()
    store.close()


# -- an unreadable file --


def test_garbage_pages_are_a_named_error_on_open_or_load(live: Store) -> None:
    _build(live, 30)
    live.close()
    data = bytearray(live.path.read_bytes())
    assert len(data) > 4 * PAGE
    rng = random.Random(3)
    data[PAGE:] = rng.randbytes(len(data) - PAGE)  # the schema page survives, every table is noise
    live.path.write_bytes(bytes(data))
    with pytest.raises(DatabaseCorrupt, match="not a usable node database"):
        Store(live.path).load_state()


def test_a_stored_header_that_does_not_match_its_hash_is_damage(live: Store) -> None:
    chain, _ = _build(live, 2)
    live.close()
    with sqlite3.connect(live.path) as db:
        db.execute("UPDATE blocks SET gas_used = 1 WHERE number = 1")
    store = Store(live.path)
    with pytest.raises(DatabaseCorrupt, match="does not match its hash"):
        store.block_by_number(1)
    assert store.block_by_number(2) == chain[2]
    store.close()


# -- a real node process --


def _genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(make_genesis(key_of("ta"), []).to_json()))
    return path


def _refused_start(data_dir: Path, genesis_file: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QKDCHAIN_VALIDATOR_KEY=VALIDATOR_KEY.hex(), COLUMNS="1000")
    return subprocess.run(
        [sys.executable, "-m", "qkdchain.cli", "node", "--data-dir", str(data_dir), "--port", str(free_port()),
         "--genesis", str(genesis_file), "--workers", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _acknowledged_blocks(url: str, count: int) -> int:
    """Send ``count`` transactions one by one, each waited for; the head block number after."""
    ta = key_of("ta")
    for nonce in range(count):
        data, to = (load_artifact().bytecode, None) if nonce == 0 else (b"", address_of(key_of("x")))
        sent = _rpc(url, "eth_sendRawTransaction", ["0x" + tx(ta, nonce, to, data, gas=2_000_000).hex()])
        for _ in range(400):
            if _rpc(url, "eth_getTransactionReceipt", [sent["result"]])["result"]:  # type: ignore[index]
                break
            time.sleep(0.025)
        else:
            raise AssertionError("no receipt")
    return int(str(_rpc(url, "eth_blockNumber", [])["result"]), 16)  # type: ignore[index]


def _assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    text = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in ("error:", "To recover", *phrases):
        assert phrase in text, text


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_node_refuses_to_start_after_kill_9_and_a_damaged_wal(tmp_path: Path, damage: str) -> None:
    genesis_file, data_dir, port = _genesis_file(tmp_path), tmp_path / "data", free_port()
    node = _start(data_dir, genesis_file, port)
    try:
        head = _acknowledged_blocks(f"http://127.0.0.1:{port}", 4)
    finally:
        node.send_signal(signal.SIGKILL)
        node.wait()
    wal = data_dir / "chain.sqlite-wal"
    if damage == "deleted":
        wal.unlink()
    else:
        os.truncate(wal, wal.stat().st_size - 100)
    _assert_refused(_refused_start(data_dir, genesis_file), f"{head} was acknowledged" if damage == "deleted"
                    else f"block {head} was acknowledged")  # fmt: skip


def _stopped_node_with_blocks(tmp_path: Path) -> tuple[Path, Path]:
    genesis_file, data_dir, port = _genesis_file(tmp_path), tmp_path / "data", free_port()
    node = _start(data_dir, genesis_file, port)
    try:
        _acknowledged_blocks(f"http://127.0.0.1:{port}", 2)
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=60) == 0
    finally:
        node.kill()
        node.wait()
    sqlite3.connect(data_dir / "chain.sqlite").close()  # the last connection checkpoints the WAL
    return data_dir, genesis_file


def test_node_refuses_a_bit_flipped_in_a_stored_balance(tmp_path: Path) -> None:
    data_dir, genesis_file = _stopped_node_with_blocks(tmp_path)
    with sqlite3.connect(data_dir / "chain.sqlite") as db:
        (balance,) = db.execute(
            "SELECT balance FROM accounts WHERE address = ?", (address_of(key_of("ta")),)
        ).fetchone()
    _flip_each(data_dir / "chain.sqlite", bytes(balance), bit=3)
    _assert_refused(_refused_start(data_dir, genesis_file), "differ from what the blocks wrote")


@pytest.mark.parametrize("where", ["header", "pages"])
def test_node_reports_a_corrupt_database_in_one_line(tmp_path: Path, where: str) -> None:
    data_dir, genesis_file = _stopped_node_with_blocks(tmp_path)
    path = data_dir / "chain.sqlite"
    data = bytearray(path.read_bytes())
    start = 0 if where == "header" else PAGE
    data[start:] = random.Random(5).randbytes(len(data) - start)
    path.write_bytes(bytes(data))
    _assert_refused(_refused_start(data_dir, genesis_file), "not a usable node database")


def test_group_commit_stores_all_blocks_or_none(tmp_path: Path) -> None:
    """Blocks written together (one commit) read back as if appended one by one, with the same
    state digest; a group with a bad block stores none of its blocks and the store goes on."""
    one_by_one = Store(tmp_path / "a" / "chain.sqlite")
    chain, state = _build(one_by_one, 6)
    grouped = Store(tmp_path / "b" / "chain.sqlite")
    grouped.append(chain[0], [], [], _diff_between(one_by_one, 0))
    diffs = [_diff_between(one_by_one, b.number) for b in chain[1:]]
    grouped.append_many([(b, [], [], d) for b, d in zip(chain[1:4], diffs[:3], strict=True)])
    with pytest.raises(StoreError):  # block 4 twice: the second insert fails, and the first is taken back
        grouped.append_many([(chain[4], [], [], diffs[3]), (chain[4], [], [], diffs[3])])
    assert grouped.head() is not None and grouped.head().number == 3  # type: ignore[union-attr]
    grouped.append_many([(b, [], [], d) for b, d in zip(chain[4:], diffs[3:], strict=True)])
    assert grouped.head().hash == one_by_one.head().hash  # type: ignore[union-attr]
    assert grouped.load_state().commitment() == one_by_one.load_state().commitment() == state.commitment()
    assert grouped.get_meta("state_digest") == one_by_one.get_meta("state_digest")
    for store in (one_by_one, grouped):
        store.close()


def _diff_between(store: Store, number: int) -> StateDiff:
    """What block ``number`` wrote, from the store's history rows."""
    diff = StateDiff()
    db = store._db()
    for address, nonce, balance, code_hash in db.execute(
        "SELECT address, nonce, balance, code_hash FROM account_history WHERE block = ?", (number,)
    ):
        diff.accounts[address] = Account(nonce, int.from_bytes(balance, "big"), bytes(code_hash))
        if bytes(code_hash) != EMPTY_CODE_HASH:
            diff.code[bytes(code_hash)] = store.code(bytes(code_hash)) or b""
    for address, slot, value in db.execute(
        "SELECT address, slot, value FROM storage_history WHERE block = ?", (number,)
    ):
        diff.storage[(address, int.from_bytes(slot, "big"))] = int.from_bytes(value, "big")
    return diff
