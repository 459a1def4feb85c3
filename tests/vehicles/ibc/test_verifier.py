"""Freshness, replay, revocation (in memory and from the chain), and batches."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account

from node.client.chain import EthTesterChain
from node.client.registry import KeyRegistry
from node.types import PseudonymId
from tests.vehicles.ibc.conftest import NOW_MS, FakeClock
from vehicles.errors import (
    FutureTimestamp,
    InvalidSignature,
    ReplayedMessage,
    RevokedPseudonym,
    StaleTimestamp,
)
from vehicles.ibc import (
    RegistryRevocationList,
    RevocationList,
    TrustedAuthority,
    Verifier,
    batch_verify,
    find_invalid,
    sign,
)
from vehicles.ibc.curve import Q, SeededRng


def test_accepts_once_then_refuses_replay(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    v = Verifier(ta.public_key, clock_ms=clock)
    signed = sign(ta.issue(bytes(32)), b"m", NOW_MS, rng)
    v.verify(signed)
    with pytest.raises(ReplayedMessage):
        v.verify(signed)


def test_checking_without_remembering_leaves_the_message_acceptable(
    ta: TrustedAuthority, rng: SeededRng, clock: FakeClock
) -> None:
    v = Verifier(ta.public_key, clock_ms=clock)
    signed = sign(ta.issue(bytes(32)), b"m", NOW_MS, rng)
    v.verify(signed, remember=False)
    v.verify(signed, remember=False)
    assert v.replay_cache_size == 0
    v.remember(signed)
    with pytest.raises(ReplayedMessage):
        v.verify(signed, remember=False)
    with pytest.raises(ReplayedMessage):
        v.remember(signed)


def test_freshness_window(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    v = Verifier(ta.public_key, clock_ms=clock, window_ms=1000)
    cred = ta.issue(bytes(32))
    with pytest.raises(StaleTimestamp) as stale:
        v.verify(sign(cred, b"m", NOW_MS - 1001, rng))
    assert stale.value.window_ms == 1000
    with pytest.raises(FutureTimestamp):
        v.verify(sign(cred, b"m", NOW_MS + 1001, rng))
    v.verify(sign(cred, b"m", NOW_MS - 1000, rng))
    v.verify(sign(cred, b"m", NOW_MS + 1000, rng))


def test_replay_cache_stays_bounded(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    v = Verifier(ta.public_key, clock_ms=clock, window_ms=1000)
    cred = ta.issue(bytes(32))
    for i in range(50):
        clock.now_ms = NOW_MS + 100 * i
        v.verify(sign(cred, b"m%d" % i, clock.now_ms, rng))
    assert v.replay_cache_size <= 11  # only what is still inside the window
    old = sign(cred, b"m0", NOW_MS, rng)
    with pytest.raises(StaleTimestamp):  # an evicted message cannot come back
        v.verify(old)


def test_invalid_signature_not_remembered(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    v = Verifier(ta.public_key, clock_ms=clock)
    signed = sign(ta.issue(bytes(32)), b"m", NOW_MS, rng)
    with pytest.raises(InvalidSignature):
        v.verify(replace(signed, sigma=(signed.sigma + 1) % Q))
    v.verify(signed)
    assert v.replay_cache_size == 1


def test_revoked_pseudonym_refused(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    revocations = RevocationList()
    v = Verifier(ta.public_key, revocations, clock_ms=clock)
    bad, good = ta.issue(bytes(32)), ta.issue(bytes(32))
    revocations.revoke(bad.pseudonym.pseudonym_id)
    with pytest.raises(RevokedPseudonym) as exc:
        v.verify(sign(bad, b"m", NOW_MS, rng))
    assert exc.value.pseudonym_id == bad.pseudonym.pseudonym_id
    v.verify(sign(good, b"m", NOW_MS, rng))  # another pseudonym of the same vehicle still works


def test_revocations_follow_the_registry(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    chain = EthTesterChain()
    ta_account, vehicle = Account.create(), Account.create()
    for a in (ta_account, vehicle):
        chain.fund(a.address, 10**18)
    registry = KeyRegistry.deploy(chain.w3, ta_account)
    registry.add_vehicle(vehicle.address)
    cred = ta.issue(bytes(32))
    pid = PseudonymId(cred.pseudonym.pseudonym_id)
    registry.register_identity(pid, vehicle.address)

    revocations = RegistryRevocationList(registry)
    v = Verifier(ta.public_key, revocations, clock_ms=clock)
    assert revocations.sync() == 0
    v.verify(sign(cred, b"before", NOW_MS, rng))
    registry.revoke_identity(pid, "compromised ECU")
    assert revocations.sync() == 1
    assert revocations.sync() == 0  # incremental: nothing new
    with pytest.raises(RevokedPseudonym):
        v.verify(sign(cred, b"after", NOW_MS, rng))


def test_batch_of_valid_signatures(ta: TrustedAuthority, rng: SeededRng) -> None:
    creds = [ta.issue(i.to_bytes(32, "big")) for i in range(7)]
    items = [sign(creds[i % 7], b"msg %d" % i, NOW_MS + i, rng) for i in range(100)]
    assert batch_verify(items, ta.public_key, rng)
    assert find_invalid(items, ta.public_key, rng) == []


@pytest.mark.parametrize("bad_index", [0, 37, 99])
def test_batch_of_100_finds_the_bad_one(ta: TrustedAuthority, rng: SeededRng, bad_index: int) -> None:
    creds = [ta.issue(i.to_bytes(32, "big")) for i in range(10)]
    items = [sign(creds[i % 10], b"msg %d" % i, NOW_MS + i, rng) for i in range(100)]
    items[bad_index] = replace(items[bad_index], message=b"tampered")
    assert not batch_verify(items, ta.public_key, rng)
    assert find_invalid(items, ta.public_key, rng) == [bad_index]


def test_batch_finds_several_bad(ta: TrustedAuthority, rng: SeededRng) -> None:
    cred = ta.issue(bytes(32))
    items = [sign(cred, b"%d" % i, NOW_MS, rng) for i in range(64)]
    for i in (3, 4, 40):
        items[i] = replace(items[i], sigma=(items[i].sigma + 7) % Q)
    assert find_invalid(items, ta.public_key, rng) == [3, 4, 40]


def test_swapped_sigmas_do_not_cancel_in_a_batch(ta: TrustedAuthority, rng: SeededRng) -> None:
    """Random weights stop an attacker who moves value between two signatures."""
    cred = ta.issue(bytes(32))
    a, b = sign(cred, b"a", NOW_MS, rng), sign(cred, b"b", NOW_MS, rng)
    a2, b2 = replace(a, sigma=(a.sigma + 5) % Q), replace(b, sigma=(b.sigma - 5) % Q)
    assert not batch_verify([a2, b2], ta.public_key, rng)


def test_verify_many_reports_each_refusal(ta: TrustedAuthority, rng: SeededRng, clock: FakeClock) -> None:
    revocations = RevocationList()
    v = Verifier(ta.public_key, revocations, clock_ms=clock, window_ms=1000, rng=rng)
    good, revoked = ta.issue(bytes(32)), ta.issue(b"\x01" * 32)
    revocations.revoke(revoked.pseudonym.pseudonym_id)
    ok = sign(good, b"ok", NOW_MS, rng)
    items = [
        ok,
        replace(sign(good, b"x", NOW_MS, rng), message=b"y"),
        sign(good, b"old", NOW_MS - 5000, rng),
        sign(revoked, b"r", NOW_MS, rng),
        ok,
    ]
    results = v.verify_many(items)
    kinds = [type(r).__name__ if r else None for r in results]
    assert kinds == [None, "InvalidSignature", "StaleTimestamp", "RevokedPseudonym", "ReplayedMessage"]
    assert isinstance(v.verify_many([ok])[0], ReplayedMessage)
