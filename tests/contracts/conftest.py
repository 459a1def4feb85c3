"""Fixtures of the contract suite: a freshly deployed registry with a small fleet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from node.client.chain import Chain
from node.client.registry import KeyRegistry
from node.types import PseudonymId, SessionId

FUNDING_WEI = 10**21


def _key(label: str) -> bytes:
    # Deterministic per label, distinct per test process so that reruns against a
    # long-lived external chain start from fresh accounts.
    return keccak(text=f"qkdchain-test:{os.getpid()}:{label}")


@dataclass
class Fleet:
    """The TA (admin), two RSUs (validators), three vehicles and an outsider."""

    chain: Chain
    ta: KeyRegistry
    rsu: list[KeyRegistry]
    veh: list[KeyRegistry]
    outsider: KeyRegistry
    deploy_block: int

    @property
    def members(self) -> list[KeyRegistry]:
        return [*self.rsu, *self.veh]

    def everyone(self) -> list[KeyRegistry]:
        return [self.ta, *self.members, self.outsider]


@pytest.fixture(scope="session")
def accounts(chain: Chain) -> dict[str, LocalAccount]:
    labels = ["ta", "rsu0", "rsu1", "veh0", "veh1", "veh2", "outsider"]
    accts = {label: Account.from_key(_key(f"{chain.name}:{label}")) for label in labels}
    for acct in accts.values():
        chain.fund(acct.address, FUNDING_WEI)
    return accts


@pytest.fixture
def fleet(chain: Chain, accounts: dict[str, LocalAccount]) -> Fleet:
    ta = KeyRegistry.deploy(chain.w3, accounts["ta"])
    deploy_block = ta.deployed_at_block  # the receipt's block: the head may already be past it
    rsu = [ta.connect(accounts[f"rsu{i}"]) for i in range(2)]
    veh = [ta.connect(accounts[f"veh{i}"]) for i in range(3)]
    for r in rsu:
        ta.add_validator(r.signer.address)  # type: ignore[union-attr]
    for v in veh:
        ta.add_vehicle(v.signer.address)  # type: ignore[union-attr]
    return Fleet(chain, ta, rsu, veh, ta.connect(accounts["outsider"]), deploy_block)


def addr(client: KeyRegistry) -> str:
    assert client.signer is not None
    return client.signer.address


def sid(n: int) -> SessionId:
    return SessionId(n.to_bytes(32, "big"))


def pid(n: int) -> PseudonymId:
    return PseudonymId((0xA0 << 248 | n).to_bytes(32, "big"))


def snapshot(fleet: Fleet, sessions: tuple[SessionId, ...] = (), identities: tuple[PseudonymId, ...] = ()) -> Any:
    """Everything a client can read about the fleet, plus how many events it has emitted."""
    reg = fleet.ta
    return (
        reg.admin(),
        [(reg.role_of(addr(c)), reg.can_write(addr(c)), reg.is_account_revoked(addr(c))) for c in fleet.everyone()],
        [reg.get_session(s) for s in sessions],
        [reg.get_identity(p) for p in identities],
        len(reg.events(from_block=fleet.deploy_block)),
    )
