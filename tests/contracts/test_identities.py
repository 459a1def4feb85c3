"""Pseudonym identities: registration, revocation, and revocation's effect on writes."""

from __future__ import annotations

import pytest

from node import errors
from tests.contracts.conftest import Fleet, addr, pid, sid, snapshot

KH = b"\x42" * 32


def test_register_identity(fleet: Fleet) -> None:
    v = addr(fleet.veh[0])
    result = fleet.ta.register_identity(pid(1), v)
    assert result.event("IdentityRegistered").args == {"pseudonymId": pid(1), "account": v}
    record = fleet.ta.get_identity(pid(1))
    assert record.exists and record.account == v and not record.revoked
    assert record.registered_at > 0
    assert not fleet.ta.is_revoked(pid(1))


def test_several_pseudonyms_per_account(fleet: Fleet) -> None:
    v = addr(fleet.veh[0])
    for n in range(3):
        fleet.ta.register_identity(pid(n), v)
    assert all(fleet.ta.get_identity(pid(n)).account == v for n in range(3))


def test_unknown_identity_reads_empty(fleet: Fleet) -> None:
    record = fleet.ta.get_identity(pid(99))
    assert not record.exists and not record.revoked
    assert not fleet.ta.is_revoked(pid(99))


def test_register_twice_refused(fleet: Fleet) -> None:
    fleet.ta.register_identity(pid(1), addr(fleet.veh[0]))
    before = snapshot(fleet, identities=(pid(1),))
    with pytest.raises(errors.IdentityExists) as exc:
        fleet.ta.register_identity(pid(1), addr(fleet.veh[1]))
    assert exc.value.pseudonymId == pid(1)
    assert snapshot(fleet, identities=(pid(1),)) == before


def test_register_for_non_member_refused(fleet: Fleet) -> None:
    with pytest.raises(errors.NotAuthorized) as exc:
        fleet.ta.register_identity(pid(1), addr(fleet.outsider))
    assert exc.value.caller == addr(fleet.outsider)


def test_register_and_revoke_need_admin(fleet: Fleet) -> None:
    with pytest.raises(errors.NotAdmin):
        fleet.veh[0].register_identity(pid(1), addr(fleet.veh[0]))
    fleet.ta.register_identity(pid(1), addr(fleet.veh[0]))
    before = snapshot(fleet, identities=(pid(1),))
    with pytest.raises(errors.NotAdmin):
        fleet.rsu[0].revoke_identity(pid(1), "no")
    assert snapshot(fleet, identities=(pid(1),)) == before


def test_revoke_identity(fleet: Fleet) -> None:
    v = addr(fleet.veh[0])
    fleet.ta.register_identity(pid(1), v)
    result = fleet.ta.revoke_identity(pid(1), "misbehaviour report 17")
    assert result.event("IdentityRevoked").args == {
        "pseudonymId": pid(1),
        "account": v,
        "reason": "misbehaviour report 17",
    }
    assert fleet.ta.is_revoked(pid(1))
    assert fleet.ta.get_identity(pid(1)).revoked
    assert fleet.ta.is_account_revoked(v)
    assert not fleet.ta.can_write(v)


def test_revoke_unknown_or_twice_refused(fleet: Fleet) -> None:
    with pytest.raises(errors.UnknownIdentity) as unknown:
        fleet.ta.revoke_identity(pid(5), "x")
    assert unknown.value.pseudonymId == pid(5)
    fleet.ta.register_identity(pid(5), addr(fleet.veh[0]))
    fleet.ta.revoke_identity(pid(5), "x")
    with pytest.raises(errors.IdentityAlreadyRevoked):
        fleet.ta.revoke_identity(pid(5), "again")


def test_re_registering_revoked_pseudonym_refused(fleet: Fleet) -> None:
    fleet.ta.register_identity(pid(1), addr(fleet.veh[0]))
    fleet.ta.revoke_identity(pid(1), "x")
    with pytest.raises(errors.IdentityExists):
        fleet.ta.register_identity(pid(1), addr(fleet.veh[1]))


def test_revocation_removes_write_permission(fleet: Fleet) -> None:
    """Every write of a revoked account fails with AccountRevoked and changes nothing."""
    veh, peer = fleet.veh[0], fleet.veh[1]
    fleet.veh[2].commit_key(sid(2), addr(veh), KH, 512, 3600)
    fleet.ta.register_identity(pid(1), addr(veh))
    fleet.ta.revoke_identity(pid(1), "stolen")
    before = snapshot(fleet, sessions=(sid(1), sid(2)))
    with pytest.raises(errors.AccountRevoked) as exc:
        veh.commit_key(sid(1), addr(peer), KH, 512, 3600)
    assert exc.value.account == addr(veh)
    with pytest.raises(errors.AccountRevoked):
        veh.confirm_key(sid(2), KH)
    # nor can a revoked account be a peer, or be re-admitted, or get a new identity
    with pytest.raises(errors.InvalidPeer):
        peer.commit_key(sid(1), addr(veh), KH, 512, 3600)
    with pytest.raises(errors.AccountRevoked):
        fleet.ta.add_vehicle(addr(veh))
    with pytest.raises(errors.AccountRevoked):
        fleet.ta.register_identity(pid(2), addr(veh))
    assert snapshot(fleet, sessions=(sid(1), sid(2))) == before


def test_revoked_party_cannot_record_messages(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(1), addr(b), KH, 512, 3600)
    b.confirm_key(sid(1), KH)
    fleet.ta.register_identity(pid(1), addr(a))
    fleet.ta.revoke_identity(pid(1), "x")
    with pytest.raises(errors.AccountRevoked):
        a.record_message(sid(1), KH, 0, 8)
    b.record_message(sid(1), KH, 0, 8)  # the honest party keeps its pad
