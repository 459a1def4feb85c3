"""The transport contract, run on every backend (real libp2p hosts on loopback, and memory)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest

from node.p2p.errors import FrameTooLarge, PeerUnreachable, RequestRefused, TransportClosed, UnknownPeer
from node.p2p.transport import DropReason
from tests.p2p.conftest import Cluster, p2p_threads, until

ALL = [0, 1, 2, 3]
MakeCluster = Callable[[int], Cluster]


def _mesh(make_cluster: MakeCluster, n: int = 4) -> Cluster:
    cluster = make_cluster(n)
    members = list(range(n))
    for i in members:
        cluster.start(i, members)
    cluster.wait_mesh(members)
    return cluster


def test_every_broadcast_reaches_every_peer_once_with_the_authenticated_sender(make_cluster: MakeCluster) -> None:
    cluster = _mesh(make_cluster)
    per_sender = 50
    for n in range(per_sender):
        for i in ALL:
            cluster.transports[i].broadcast(b"%d:%d" % (i, n))
    want = per_sender * 3
    until(lambda: all(len(cluster.inboxes[i].got()) >= want for i in ALL), "every broadcast delivered")
    for i in ALL:
        got = cluster.inboxes[i].got()
        assert len(got) == want
        assert Counter(got) == Counter(
            (cluster.addresses[j], b"%d:%d" % (j, n)) for j in ALL if j != i for n in range(per_sender)
        )
        for j in ALL:  # per-sender order is kept
            from_j = [f for s, f in got if s == cluster.addresses[j]]
            assert from_j == [b"%d:%d" % (j, n) for n in range(per_sender)] if j != i else from_j == []
        assert cluster.inboxes[i].threads and all(t.startswith("p2p-delivery") for t in cluster.inboxes[i].threads)
        assert threading.current_thread().name not in cluster.inboxes[i].threads


def test_a_burst_of_frames_of_every_size_arrives_whole_and_in_order(make_cluster: MakeCluster) -> None:
    """Frames queued together may share a write and be read in pieces of any size: none is
    split, merged, lost or reordered (on libp2p a burst is one write of several hundred KB,
    frames straddle Noise messages, mplex chunks and reads)."""
    cluster = _mesh(make_cluster, 2)
    sizes = [1, 3, 0, 100, 70_000, 5, 300_000, 2, *range(0, 400, 7), 65_535, 65_536, 1_000_000, 9]
    frames = [bytes([i % 251]) * size + i.to_bytes(2, "big") for i, size in enumerate(sizes)]
    for frame in frames:
        cluster.transports[0].send(cluster.addresses[1], frame)
    until(lambda: len(cluster.inboxes[1].got()) >= len(frames), "the burst delivered")
    assert cluster.inboxes[1].got() == [(cluster.addresses[0], f) for f in frames]


def test_send_reaches_only_its_peer(make_cluster: MakeCluster) -> None:
    cluster = _mesh(make_cluster)
    cluster.transports[0].send(cluster.addresses[2], b"only two")
    until(lambda: cluster.inboxes[2].got() == [(cluster.addresses[0], b"only two")], "the frame at 2")
    cluster.transports[1].broadcast(b"marker")  # once 1's marker arrived everywhere, 0's frame would have too
    until(lambda: all(b"marker" in cluster.inboxes[i].payloads() for i in (0, 2, 3)), "markers")
    assert cluster.inboxes[1].got() == [] and cluster.inboxes[3].payloads() == [b"marker"]


def test_request_response_and_its_errors(make_cluster: MakeCluster) -> None:
    cluster = _mesh(make_cluster)
    a, b = cluster.transports[0], cluster.addresses[1]
    assert a.request(b, b"head?", 10.0) == b"re:" + cluster.addresses[0].encode() + b":head?"
    big = b"x" * 100_000
    assert a.request(b, big, 10.0).endswith(big)
    with pytest.raises(RequestRefused):
        a.request(b, b"raise", 10.0)
    with pytest.raises(UnknownPeer):
        a.request(cluster.addresses[0], b"to myself", 1.0)
    with pytest.raises((UnknownPeer, PeerUnreachable)):
        a.request("0x" + "00" * 20, b"nobody", 1.0)
    assert a.request(b, b"still fine", 10.0).endswith(b"still fine")


def test_an_oversized_frame_is_refused_and_the_receiver_lives_on(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(2)
    cluster.max_frame[1] = 1024
    for i in (0, 1):
        cluster.start(i, [0, 1])
    cluster.wait_mesh([0, 1])
    sender, receiver = cluster.transports[0], cluster.transports[1]
    with pytest.raises(FrameTooLarge):
        receiver.broadcast(b"x" * 1025)  # the receiver's own bound applies to what it sends
    sender.broadcast(b"x" * 4096)
    until(lambda: receiver.drops().get(DropReason.FRAME_TOO_LARGE, 0) == 1, "the refusal counted")

    def small_arrives() -> bool:  # the sender's link may need a reconnect after the reset
        if cluster.addresses[1] in sender.connected():
            sender.send(cluster.addresses[1], b"small")
        return b"small" in cluster.inboxes[1].payloads()

    until(small_arrives, "a small frame after the refusal")
    assert all(len(f) <= 1024 for f in cluster.inboxes[1].payloads())
    assert receiver.request(cluster.addresses[0], b"ok?", 10.0).endswith(b"ok?")


def test_frames_and_requests_from_a_peer_not_allowed_are_dropped(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    for i in (0, 1):
        cluster.start(i, [0, 1])
    outsider = cluster.start(2, [0, 1, 2])  # knows them; they do not know it
    until(lambda: len(outsider.connected()) == 2, "the outsider's links")
    for n in range(5):
        outsider.broadcast(b"intrusion %d" % n)
    with pytest.raises(RequestRefused):
        outsider.request(cluster.addresses[0], b"blocks?", 10.0)
    until(lambda: all(cluster.transports[i].drops().get(DropReason.UNKNOWN_PEER, 0) >= 5 for i in (0, 1)), "drops")
    cluster.transports[1].broadcast(b"legit")
    until(lambda: b"legit" in cluster.inboxes[0].payloads(), "a legitimate frame")
    assert cluster.inboxes[0].payloads() == [b"legit"] and cluster.inboxes[1].got() == []


def test_a_stopped_peer_restarts_and_receives_again(make_cluster: MakeCluster) -> None:
    cluster = _mesh(make_cluster, 3)
    cluster.stop(2)
    until(lambda: cluster.addresses[2] not in cluster.transports[0].connected(), "the link to notice")
    with pytest.raises(PeerUnreachable):
        cluster.transports[0].send(cluster.addresses[2], b"nobody home")
    cluster.start(2, [0, 1, 2])
    cluster.wait_mesh([0, 1, 2])  # within seconds: the failed-dial cache is cleared before each dial
    cluster.transports[0].broadcast(b"welcome back")
    until(lambda: cluster.inboxes[2].payloads() == [b"welcome back"], "the frame at the restarted peer")
    assert cluster.transports[2].request(cluster.addresses[1], b"sync", 10.0).endswith(b"sync")


def test_a_slow_handler_does_not_stall_the_network_and_overflow_is_counted(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    cluster.delivery_queue[1] = 5
    for i in range(3):
        cluster.start(i, [0, 1, 2])
    cluster.wait_mesh([0, 1, 2])
    cluster.inboxes[1].gate.clear()  # 1's handler blocks on its first frame
    cluster.transports[0].send(cluster.addresses[1], b"first")
    until(lambda: cluster.inboxes[1].payloads() == [b"first"], "the slow handler to be busy")
    cluster.transports[0].send(cluster.addresses[2], b"meanwhile")  # the network keeps delivering elsewhere
    until(lambda: cluster.inboxes[2].payloads() == [b"meanwhile"], "delivery to a fast peer")
    burst = [b"burst %d" % n for n in range(20)]
    for frame in burst:
        cluster.transports[0].send(cluster.addresses[1], frame)
    until(lambda: cluster.transports[1].drops().get(DropReason.DELIVERY_QUEUE_FULL, 0) == 15, "the overflow")
    assert cluster.transports[0].request(cluster.addresses[2], b"alive", 10.0).endswith(b"alive")
    cluster.inboxes[1].gate.set()
    until(lambda: len(cluster.inboxes[1].got()) == 6, "the queued frames")
    assert cluster.inboxes[1].payloads() == [b"first", *burst[:5]]  # the bound held, order kept


def test_close_is_clean_idempotent_and_final(make_cluster: MakeCluster) -> None:
    cluster = _mesh(make_cluster, 2)
    transport = cluster.transports[0]
    cluster.stop(0)
    transport.close()
    with pytest.raises(TransportClosed):
        transport.broadcast(b"late")
    with pytest.raises(TransportClosed):
        transport.start(lambda _s, _f: None, lambda _s, d: d)
    assert transport.connected() == []
    cluster.stop(1)
    until(lambda: not p2p_threads(), "no transport thread left", 20.0)
