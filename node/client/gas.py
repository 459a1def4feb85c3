"""Gas used by every KeyRegistry entry point, measured on a live chain (a report, not a test)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils.crypto import keccak

from node.client.chain import Chain
from node.client.registry import KeyRegistry
from node.types import Address, Commitment, Confirmation, KeyHash, PseudonymId, SessionId


@dataclass(frozen=True)
class GasRow:
    function: str
    gas_used: int
    note: str = ""


def _h(label: str) -> bytes:
    return keccak(text=label)


def measure_gas(chain: Chain, batch_size: int = 10) -> list[GasRow]:
    """Run each registry function once (batches at ``batch_size``) and report gas used."""
    ta, rsu, a, b = (Account.from_key(_h(f"gas-report:{label}")) for label in ("ta", "rsu", "a", "b"))
    for acct in (ta, rsu, a, b):
        chain.fund(acct.address, 10**20)
    admin = KeyRegistry.deploy(chain.w3, ta)
    assert admin.deployment is not None
    va, vb, vr = admin.connect(a), admin.connect(b), admin.connect(rsu)
    rows = [GasRow("deploy", admin.deployment.gas_used)]

    def row(name: str, result_gas: int, note: str = "") -> None:
        rows.append(GasRow(name, result_gas, note))

    row("addValidator", admin.add_validator(rsu.address).gas_used)
    row("addVehicle", admin.add_vehicle(a.address).gas_used)
    admin.add_vehicle(b.address)
    row("registerIdentity", admin.register_identity(PseudonymId(_h("p1")), a.address).gas_used)
    s1, kh = SessionId(_h("s1")), KeyHash(_h("k1"))
    row("commitKey", va.commit_key(s1, b.address, kh, 4096, 3600).gas_used)
    row("confirmKey", vb.confirm_key(s1, kh).gas_used, "AGREED")
    row("recordMessage", va.record_message(s1, _h("c1"), 0, 256).gas_used, "first record")
    row("recordMessage", vb.record_message(s1, _h("c2"), 256, 256).gas_used, "later record")
    s2 = SessionId(_h("s2"))
    va.commit_key(s2, b.address, kh, 4096, 3600)
    row("confirmKey", vb.confirm_key(s2, KeyHash(_h("other"))).gas_used, "MISMATCH")
    ids = [SessionId(_h(f"batch{i}")) for i in range(batch_size)]
    commits = [Commitment(i, Address(a.address), kh, 4096, 3600) for i in ids]
    g = vr.commit_keys(commits).gas_used
    row("commitKeys", g, f"{batch_size} sessions, {g // batch_size} per session")
    g = va.confirm_keys([Confirmation(i, kh) for i in ids]).gas_used
    row("confirmKeys", g, f"{batch_size} sessions, {g // batch_size} per session")
    row("revokeIdentity", admin.revoke_identity(PseudonymId(_h("p1")), "gas report").gas_used)
    row("removeMember", admin.remove_member(b.address).gas_used)
    row("transferAdmin", admin.transfer_admin(rsu.address).gas_used)
    return rows
