"""Batch entry points for RSUs: many commits or confirms in one transaction, atomically."""

from __future__ import annotations

import pytest

from node import errors
from node.types import Address, Commitment, Confirmation, KeyHash, SessionState
from tests.contracts.conftest import Fleet, addr, sid, snapshot


def _kh(n: int) -> KeyHash:
    return KeyHash(bytes([n]) * 32)


def test_commit_and_confirm_batches(fleet: Fleet) -> None:
    rsu = fleet.rsu[0]
    vehicles = fleet.veh
    commitments = [Commitment(sid(i), Address(addr(vehicles[i % 3])), _kh(i), 256 + i, 600) for i in range(6)]
    result = rsu.commit_keys(commitments)
    committed = [e for e in result.events if e.name == "KeyCommitted"]
    assert [e.args["sessionId"] for e in committed] == [sid(i) for i in range(6)]
    assert all(rsu.session_state(sid(i)) is SessionState.COMMITTED for i in range(6))

    # vehicle 0 holds sessions 0 and 3: confirm one right, one wrong, in one batch
    result = vehicles[0].confirm_keys([Confirmation(sid(0), _kh(0)), Confirmation(sid(3), _kh(99))])
    states = [e.args["state"] for e in result.events if e.name == "KeyConfirmed"]
    assert states == [SessionState.AGREED, SessionState.MISMATCH]
    assert rsu.get_session(sid(3)).key_bits == 259


def test_commit_batch_is_atomic(fleet: Fleet) -> None:
    rsu = fleet.rsu[0]
    rsu.commit_key(sid(2), addr(fleet.veh[0]), _kh(2), 64, 600)
    batch = [Commitment(sid(i), Address(addr(fleet.veh[0])), _kh(i), 64, 600) for i in range(4)]
    before = snapshot(fleet, sessions=tuple(sid(i) for i in range(4)))
    with pytest.raises(errors.SessionExists) as exc:
        rsu.commit_keys(batch)
    assert exc.value.sessionId == sid(2)
    assert snapshot(fleet, sessions=tuple(sid(i) for i in range(4))) == before


def test_confirm_batch_is_atomic(fleet: Fleet) -> None:
    rsu, v = fleet.rsu[0], fleet.veh[0]
    rsu.commit_keys([Commitment(sid(i), Address(addr(v)), _kh(i), 64, 600) for i in range(2)])
    rsu.commit_key(sid(5), addr(fleet.veh[1]), _kh(5), 64, 600)  # not v's to confirm
    with pytest.raises(errors.NotSessionPeer):
        v.confirm_keys([Confirmation(sid(0), _kh(0)), Confirmation(sid(5), _kh(5))])
    assert rsu.session_state(sid(0)) is SessionState.COMMITTED


def test_empty_batches_refused(fleet: Fleet) -> None:
    with pytest.raises(errors.EmptyBatch):
        fleet.rsu[0].commit_keys([])
    with pytest.raises(errors.EmptyBatch):
        fleet.rsu[0].confirm_keys([])


def test_batches_need_a_writer(fleet: Fleet) -> None:
    with pytest.raises(errors.NotAuthorized):
        fleet.outsider.commit_keys([Commitment(sid(1), Address(addr(fleet.veh[0])), _kh(1), 64, 600)])
    with pytest.raises(errors.NotAuthorized):
        fleet.outsider.confirm_keys([Confirmation(sid(1), _kh(1))])
