"""Fault injection of the in-memory network: seeded drops, duplicates, FIFO delays, partitions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from node.p2p.errors import BadPeerConfig, PeerUnreachable
from node.p2p.memory import Faults, MemoryNetwork, MemoryTransport
from node.p2p.transport import DropReason
from tests.p2p.conftest import Inbox, p2p_threads, until

NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def wire() -> Iterator[tuple[MemoryNetwork, dict[str, MemoryTransport], dict[str, Inbox]]]:
    network = MemoryNetwork(seed=3)
    transports, inboxes = {}, {}
    for name in NAMES:
        transports[name], inboxes[name] = network.transport(name), Inbox()
        transports[name].start(inboxes[name].on_frame, inboxes[name].on_request)
    yield network, transports, inboxes
    network.close()
    until(lambda: not p2p_threads(), "the wire and delivery threads to end")


def _burst(t: MemoryTransport, to: str, n: int) -> list[bytes]:
    frames = [b"%d" % i for i in range(n)]
    for frame in frames:
        t.send(to, frame)
    return frames


def test_drops_are_seeded_counted_and_only_on_the_faulty_link(wire) -> None:  # type: ignore[no-untyped-def]
    network, t, inbox = wire
    network.link("a", "b", drop=0.3)
    frames = _burst(t["a"], "b", 400)
    _burst(t["a"], "c", 50)
    t["a"].send("b", b"end")  # FIFO: once it is in (or dropped), the burst is settled
    until(lambda: len(inbox["b"].got()) + t["a"].drops().get(DropReason.INJECTED, 0) == 401, "the burst")
    until(lambda: len(inbox["c"].got()) == 50, "the clean link")
    got = [f for f in inbox["b"].payloads() if f != b"end"]
    assert 80 < 400 - len(got) < 160  # about 30 %
    assert got == sorted(got, key=frames.index)  # loss, not reordering


def test_the_same_seed_drops_the_same_frames() -> None:
    def run() -> list[bytes]:
        network = MemoryNetwork(seed=11)
        a, b, inbox = network.transport("a"), network.transport("b"), Inbox()
        a.start(Inbox().on_frame, Inbox().on_request)
        b.start(inbox.on_frame, inbox.on_request)
        network.faults(drop=0.5)
        _burst(a, "b", 100)
        until(lambda: len(inbox.got()) + a.drops().get(DropReason.INJECTED, 0) == 100, "the burst")
        network.close()
        return inbox.payloads()

    assert run() == run()


def test_duplicates_arrive_twice_in_place(wire) -> None:  # type: ignore[no-untyped-def]
    network, t, inbox = wire
    network.faults(duplicate=0.5)
    frames = _burst(t["a"], "b", 100)
    until(lambda: b"99" in inbox["b"].payloads(), "the burst")
    got = inbox["b"].payloads()
    counts = Counter(got)
    assert set(counts) == set(frames) and set(counts.values()) == {1, 2} and 100 < len(got) < 200
    assert list(dict.fromkeys(got)) == frames


def test_delays_keep_each_link_fifo(wire) -> None:  # type: ignore[no-untyped-def]
    network, t, inbox = wire
    network.faults(delay_s=(0.0, 0.02))
    frames = _burst(t["a"], "b", 100)
    until(lambda: len(inbox["b"].got()) == 100, "the burst")
    assert inbox["b"].payloads() == frames


def test_partitions_cut_frames_and_requests_and_heal(wire) -> None:  # type: ignore[no-untyped-def]
    network, t, inbox = wire
    network.partition([{"a", "b"}, {"c", "d"}])
    assert t["a"].connected() == ["b"] and t["d"].connected() == ["c"]
    t["a"].broadcast(b"left")
    with pytest.raises(PeerUnreachable):
        t["a"].send("c", b"across")
    with pytest.raises(PeerUnreachable):
        t["a"].request("d", b"across", 1.0)
    until(lambda: inbox["b"].payloads() == [b"left"], "delivery inside the group")
    network.heal()
    assert t["a"].connected() == ["b", "c", "d"]
    t["a"].broadcast(b"healed")
    until(lambda: all(inbox[n].payloads()[-1:] == [b"healed"] for n in "bcd"), "delivery after healing")
    assert inbox["c"].payloads() == [b"healed"]


def test_a_partition_drops_frames_already_in_flight(wire) -> None:  # type: ignore[no-untyped-def]
    network, t, inbox = wire
    network.link("a", "b", delay_s=(0.3, 0.3))
    t["a"].send("b", b"in flight")
    network.partition([{"a"}, {"b"}])
    until(lambda: t["b"].drops().get(DropReason.PARTITIONED, 0) == 1, "the in-flight drop")
    assert inbox["b"].got() == []


def test_faults_are_validated_and_addresses_unique(wire) -> None:  # type: ignore[no-untyped-def]
    network, _t, _inbox = wire
    with pytest.raises(ValueError):
        Faults(drop=1.5)
    with pytest.raises(ValueError):
        network.faults(delay_s=(0.2, 0.1))
    with pytest.raises(BadPeerConfig):
        network.transport("a")
