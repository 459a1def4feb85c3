"""Key sessions: commit, confirm (AGREED / MISMATCH), expiry, reuse."""

from __future__ import annotations

import pytest

from node import errors
from node.types import SessionState
from tests.contracts.conftest import Fleet, addr, sid, snapshot

KH = b"\x42" * 32
OTHER = b"\x43" * 32


def test_commit_key(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.rsu[0]
    result = a.commit_key(sid(1), addr(b), KH, 1024, 600)
    ev = result.event("KeyCommitted")
    block = fleet.chain.w3.eth.get_block(result.block_number)
    assert ev.args == {
        "sessionId": sid(1),
        "initiator": addr(a),
        "peer": addr(b),
        "keyHash": KH,
        "keyBits": 1024,
        "expiresAt": block["timestamp"] + 600,
    }
    s = a.get_session(sid(1))
    assert (s.initiator, s.peer, s.key_bits, s.state, s.consumed_bits, s.key_hash) == (
        addr(a),
        addr(b),
        1024,
        SessionState.COMMITTED,
        0,
        KH,
    )
    assert a.session_state(sid(1)) is SessionState.COMMITTED


def test_confirm_matching_hash_agrees(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    result = b.confirm_key(sid(1), KH)
    assert result.event("KeyConfirmed").args == {
        "sessionId": sid(1),
        "peer": addr(b),
        "keyHash": KH,
        "state": SessionState.AGREED,
    }
    assert a.session_state(sid(1)) is SessionState.AGREED


def test_confirm_other_hash_is_mismatch(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    result = b.confirm_key(sid(1), OTHER)
    assert result.event("KeyConfirmed").args["state"] == SessionState.MISMATCH
    assert a.session_state(sid(1)) is SessionState.MISMATCH
    with pytest.raises(errors.SessionNotAgreed) as exc:
        a.record_message(sid(1), KH, 0, 8)
    assert exc.value.state == SessionState.MISMATCH


def test_only_named_peer_confirms(fleet: Fleet) -> None:
    a, b, c = fleet.veh[0], fleet.veh[1], fleet.veh[2]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    before = snapshot(fleet, sessions=(sid(1),))
    for intruder in (a, c, fleet.rsu[0]):
        with pytest.raises(errors.NotSessionPeer) as exc:
            intruder.confirm_key(sid(1), KH)
        assert exc.value.caller == addr(intruder)
        assert exc.value.sessionId == sid(1)
    with pytest.raises(errors.NotAuthorized):
        fleet.outsider.confirm_key(sid(1), KH)
    assert snapshot(fleet, sessions=(sid(1),)) == before


def test_confirm_twice_refused(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    b.confirm_key(sid(1), OTHER)
    with pytest.raises(errors.SessionNotPending) as exc:
        b.confirm_key(sid(1), KH)  # a MISMATCH cannot be repaired into AGREED
    assert exc.value.state == SessionState.MISMATCH


def test_confirm_unknown_session(fleet: Fleet) -> None:
    with pytest.raises(errors.UnknownSession) as exc:
        fleet.veh[0].confirm_key(sid(7), KH)
    assert exc.value.sessionId == sid(7)


def test_session_id_cannot_be_reused(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    for caller, peer in ((a, b), (b, a), (fleet.rsu[0], a)):
        with pytest.raises(errors.SessionExists) as exc:
            caller.commit_key(sid(1), addr(peer), OTHER, 64, 600)
        assert exc.value.sessionId == sid(1)
    b.confirm_key(sid(1), KH)
    fleet.chain.advance_time(601)
    with pytest.raises(errors.SessionExists):  # not even after expiry
        a.commit_key(sid(1), addr(b), OTHER, 64, 600)


@pytest.mark.parametrize("bad", ["self", "outsider", "removed"])
def test_invalid_peer(fleet: Fleet, bad: str) -> None:
    a = fleet.veh[0]
    if bad == "removed":
        fleet.ta.remove_member(addr(fleet.veh[1]))
    peer = {"self": addr(a), "outsider": addr(fleet.outsider), "removed": addr(fleet.veh[1])}[bad]
    with pytest.raises(errors.InvalidPeer) as exc:
        a.commit_key(sid(1), peer, KH, 1024, 600)
    assert exc.value.peer == peer
    assert a.get_session(sid(1)).state is SessionState.NONE


def test_invalid_key_bits_and_ttl(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    with pytest.raises(errors.InvalidKeyBits):
        a.commit_key(sid(1), addr(b), KH, 0, 600)
    with pytest.raises(errors.InvalidTtl) as exc:
        a.commit_key(sid(1), addr(b), KH, 64, 0)
    max_ttl = a.max_ttl()
    assert exc.value.maxTtl == max_ttl
    with pytest.raises(errors.InvalidTtl):
        a.commit_key(sid(1), addr(b), KH, 64, max_ttl + 1)
    a.commit_key(sid(1), addr(b), KH, 64, max_ttl)


def test_outsider_cannot_commit(fleet: Fleet) -> None:
    with pytest.raises(errors.NotAuthorized) as exc:
        fleet.outsider.commit_key(sid(1), addr(fleet.veh[0]), KH, 64, 600)
    assert exc.value.caller == addr(fleet.outsider)


def test_uncommitted_session_expires(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    fleet.chain.advance_time(601)
    assert a.session_state(sid(1)) is SessionState.EXPIRED
    assert a.get_session(sid(1)).state is SessionState.EXPIRED
    with pytest.raises(errors.SessionNotPending) as exc:
        b.confirm_key(sid(1), KH)
    assert exc.value.state == SessionState.EXPIRED


def test_agreed_session_expires(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 1024, 600)
    b.confirm_key(sid(1), KH)
    a.record_message(sid(1), KH, 0, 100)
    fleet.chain.advance_time(601)
    assert a.session_state(sid(1)) is SessionState.EXPIRED
    with pytest.raises(errors.SessionNotAgreed) as exc:
        a.record_message(sid(1), KH, 100, 8)
    assert exc.value.state == SessionState.EXPIRED
    assert a.consumed_bits(sid(1)) == 100


def test_client_validates_arguments_before_sending(fleet: Fleet) -> None:
    from node.client.registry import InvalidArgument, NoSigner

    before = snapshot(fleet)
    with pytest.raises(InvalidArgument):
        fleet.veh[0].commit_key(b"short", addr(fleet.veh[1]), KH, 64, 600)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        fleet.veh[0].commit_key(sid(1), "0xnot-an-address", KH, 64, 600)
    with pytest.raises(InvalidArgument):
        fleet.veh[0].commit_key(sid(1), addr(fleet.veh[1]), KH, 2**32, 600)
    with pytest.raises(InvalidArgument):
        fleet.veh[0].record_message(sid(1), KH, -1, 8)
    from node.client.registry import KeyRegistry

    with pytest.raises(NoSigner):
        KeyRegistry(fleet.chain.w3, fleet.ta.address).add_vehicle(addr(fleet.outsider))
    assert snapshot(fleet) == before
