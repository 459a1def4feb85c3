"""libp2p specifics: identities bound to the validator key, peer files, a peer in another OS process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.p2p.errors import BadPeerConfig, PeerUnreachable
from node.p2p.libp2p import (
    Libp2pTransport,
    PeerConfig,
    address_of_peer_id,
    load_peers,
    multiaddr_for,
    peer_id_for_key,
)
from node.p2p.transport import DropReason
from tests.p2p.conftest import Inbox, address_of_key, free_port, key_of, p2p_threads, until

ROOT = Path(__file__).resolve().parents[2]


def test_the_peer_id_is_bound_to_the_validator_key() -> None:
    from libp2p.peer.id import ID

    key = key_of(1)
    peer_id = peer_id_for_key(key)
    assert address_of_peer_id(ID.from_base58(peer_id)) == address_of_key(key)
    assert Libp2pTransport(key).address == address_of_key(key)
    assert multiaddr_for(key, "127.0.0.1", 30303) == f"/ip4/127.0.0.1/tcp/30303/p2p/{peer_id}"


def _entry(i: int, port: int = 30303) -> dict[str, str]:
    return {"address": address_of_key(key_of(i)), "multiaddr": multiaddr_for(key_of(i), "127.0.0.1", port)}


def test_a_good_peer_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": [_entry(1), _entry(2, 30304)]}))
    assert load_peers(path) == [PeerConfig(**_entry(1)), PeerConfig(**_entry(2, 30304))]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ('["a list"]', "expected an object"),
        ('{"peers": [{"multiaddr": "/ip4/1.2.3.4/tcp/1"}]}', "expected"),
        (json.dumps({"peers": [{**_entry(1), "address": "0xABC"}]}), "not lower-case"),
        (json.dumps({"peers": [{**_entry(1), "multiaddr": "/ip4/1.2.3.4/tcp/1"}]}), "multiaddr"),
        (json.dumps({"peers": [{**_entry(1), "multiaddr": "garbage"}]}), "multiaddr"),
        (json.dumps({"peers": [{**_entry(1), "address": _entry(2)["address"]}]}), "belongs to"),
        (json.dumps({"peers": [_entry(1), _entry(1, 30304)]}), "listed twice"),
    ],
)
def test_bad_peer_files_are_refused_with_a_reason(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "peers.json"
    path.write_text(content)
    with pytest.raises(BadPeerConfig) as caught:
        load_peers(path)
    assert reason in caught.value.reason and caught.value.where.startswith(str(path))


def test_a_missing_peer_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadPeerConfig):
        load_peers(tmp_path / "absent.json")


def test_a_taken_port_fails_start_with_a_named_error() -> None:
    first = Libp2pTransport(key_of(1), "127.0.0.1", free_port())
    first.start(Inbox().on_frame, Inbox().on_request)
    try:
        from node.p2p.errors import ListenFailed

        second = Libp2pTransport(key_of(2), "127.0.0.1", first.port)
        with pytest.raises(ListenFailed):
            second.start(Inbox().on_frame, Inbox().on_request)
    finally:
        first.close()
    until(lambda: not p2p_threads(), "threads to end")


class PeerProcess:
    """``tests.p2p.peer_process`` in a child process (an echoing peer)."""

    def __init__(self, key: bytes, port: int, peers_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.p2p.peer_process", key.hex(), str(port), str(peers_file)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Libp2pTransport, Inbox, list[PeerProcess], bytes, int, Path]]:
    here, there = key_of(10), key_of(11)
    ports = [free_port(), free_port()]
    peers_file = tmp_path / "peers.json"
    entries = [
        {"address": address_of_key(k), "multiaddr": multiaddr_for(k, "127.0.0.1", p)}
        for k, p in zip((here, there), ports, strict=True)
    ]
    peers_file.write_text(json.dumps({"peers": entries}))
    inbox = Inbox()
    local = Libp2pTransport(here, "127.0.0.1", ports[0], load_peers(peers_file))
    local.start(inbox.on_frame, inbox.on_request)
    children = [PeerProcess(there, ports[1], peers_file)]
    yield local, inbox, children, there, ports[1], peers_file
    for child in children:
        child.stop()
    local.close()
    until(lambda: not p2p_threads(), "threads to end")


def test_a_peer_in_another_process_echoes_and_survives_a_kill_and_restart(pair) -> None:  # type: ignore[no-untyped-def]
    local, inbox, children, there_key, there_port, peers_file = pair
    there = address_of_key(there_key)

    def echoed(tag: bytes) -> bool:  # resend until the echo is back: the peer's link to us may lag ours
        if (there, b"echo:" + tag) in inbox.got():
            return True
        if there in local.connected():
            local.send(there, tag)
        return False

    until(lambda: local.connected() == [there], "the link to the child")
    until(lambda: echoed(b"ping"), "the echo")
    assert local.request(there, b"blocks?", 10.0) == b"re:blocks?"

    children[0].kill()
    until(lambda: local.connected() == [], "the link to notice the kill")
    with pytest.raises(PeerUnreachable):
        local.request(there, b"blocks?", 5.0)
    children.append(PeerProcess(there_key, there_port, peers_file))
    until(lambda: local.connected() == [there], "the reconnect")
    until(lambda: echoed(b"again"), "an echo from the restarted peer")
    assert local.request(there, b"head?", 10.0) == b"re:head?"
    assert local.drops().get(DropReason.UNKNOWN_PEER, 0) == 0
