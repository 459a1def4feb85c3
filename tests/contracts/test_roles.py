"""Roles: the TA administers validators and vehicles; only members write."""

from __future__ import annotations

import pytest

from node import errors
from node.types import Role
from tests.contracts.conftest import Fleet, addr, snapshot


def test_deployer_is_admin(fleet: Fleet) -> None:
    assert fleet.ta.admin() == addr(fleet.ta)
    assert fleet.ta.events("AdminTransferred", from_block=fleet.deploy_block)[0].args["newAdmin"] == addr(fleet.ta)


def test_roles_after_setup(fleet: Fleet) -> None:
    for r in fleet.rsu:
        assert fleet.ta.role_of(addr(r)) is Role.VALIDATOR
        assert fleet.ta.can_write(addr(r))
    for v in fleet.veh:
        assert fleet.ta.role_of(addr(v)) is Role.VEHICLE
    assert fleet.ta.role_of(addr(fleet.outsider)) is Role.NONE
    assert not fleet.ta.can_write(addr(fleet.outsider))
    assert not fleet.ta.can_write(addr(fleet.ta))  # the TA administers; it holds no key sessions


def test_add_emits_member_added(fleet: Fleet) -> None:
    result = fleet.ta.add_vehicle(addr(fleet.outsider))
    ev = result.event("MemberAdded")
    assert ev.args == {"account": addr(fleet.outsider), "role": Role.VEHICLE}
    assert fleet.ta.can_write(addr(fleet.outsider))


def test_remove_member(fleet: Fleet) -> None:
    v = addr(fleet.veh[0])
    result = fleet.ta.remove_member(v)
    assert result.event("MemberRemoved").args == {"account": v, "role": Role.VEHICLE}
    assert fleet.ta.role_of(v) is Role.NONE
    assert not fleet.ta.can_write(v)
    with pytest.raises(errors.NotMember) as exc:
        fleet.ta.remove_member(v)
    assert exc.value.account == v


def test_add_twice_refused(fleet: Fleet) -> None:
    before = snapshot(fleet)
    with pytest.raises(errors.AlreadyMember) as exc:
        fleet.ta.add_validator(addr(fleet.veh[0]))
    assert exc.value.account == addr(fleet.veh[0])
    assert exc.value.role == Role.VEHICLE
    assert snapshot(fleet) == before


def test_zero_address_refused(fleet: Fleet) -> None:
    zero = "0x" + "00" * 20
    with pytest.raises(errors.ZeroAddress):
        fleet.ta.add_vehicle(zero)
    with pytest.raises(errors.ZeroAddress):
        fleet.ta.transfer_admin(zero)


@pytest.mark.parametrize("who", ["rsu", "veh", "outsider"])
@pytest.mark.parametrize("action", ["add_validator", "add_vehicle", "remove_member", "transfer_admin"])
def test_admin_functions_refuse_non_admin(fleet: Fleet, who: str, action: str) -> None:
    caller = {"rsu": fleet.rsu[0], "veh": fleet.veh[0], "outsider": fleet.outsider}[who]
    before = snapshot(fleet)
    with pytest.raises(errors.NotAdmin) as exc:
        getattr(caller, action)(addr(fleet.veh[1]))
    assert exc.value.caller == addr(caller)
    assert snapshot(fleet) == before


def test_transfer_admin(fleet: Fleet) -> None:
    new = addr(fleet.rsu[0])
    result = fleet.ta.transfer_admin(new)
    assert result.event("AdminTransferred").args == {"previousAdmin": addr(fleet.ta), "newAdmin": new}
    assert fleet.ta.admin() == new
    with pytest.raises(errors.NotAdmin):
        fleet.ta.add_vehicle(addr(fleet.outsider))
    fleet.rsu[0].add_vehicle(addr(fleet.outsider))
    assert fleet.ta.role_of(addr(fleet.outsider)) is Role.VEHICLE


def test_mined_failing_transaction_changes_nothing(fleet: Fleet) -> None:
    """A reverted transaction that *is* mined (no pre-flight) still leaves no trace."""
    before = snapshot(fleet)
    with pytest.raises(errors.NotAdmin) as exc:
        fleet.outsider.transact_unchecked("addVehicle", addr(fleet.outsider), gas=200_000)
    assert exc.value.tx_hash is not None
    receipt = fleet.chain.w3.eth.get_transaction_receipt(exc.value.tx_hash)
    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert snapshot(fleet) == before
