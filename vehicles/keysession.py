"""A QKD key session between two agents, with both commitments on chain.

The initiator plays Alice, the peer Bob. After reconciliation each side commits
``keccak256(session_id || reconciled block)`` (``commitKey`` / ``confirmKey``); only
when the registry says AGREED is the block amplified and the final key put in both
pools. An aborted session (e.g. an eavesdropper pushed the QBER up) or a MISMATCH
puts nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from node.types import KeyHash, SessionId, SessionState, TxResult
from qkd.errors import SessionAborted
from qkd.session import SessionConfig, SessionRecord, amplify, reconcile
from qkd.verification import commitment
from vehicles.agent import Agent

Outcome = Literal["agreed", "mismatch", "aborted"]


@dataclass(frozen=True)
class KeySessionReport:
    initiator: str
    peer: str
    session_id: bytes
    outcome: Outcome
    record: SessionRecord
    key_bits: int

    @property
    def abort_reason(self) -> str | None:
        return self.record.abort_reason


def establish_key(
    initiator: Agent,
    peer: Agent,
    config: SessionConfig,
    session_id: bytes,
    ttl_s: int,
    record: Callable[[str, TxResult], None] | None = None,
) -> KeySessionReport:
    """Run QKD, commit both hashes, and on AGREED store the final key on both sides."""
    note = record or (lambda _fn, _r: None)
    try:
        rec = reconcile(config, session_id)
    except SessionAborted as exc:
        return KeySessionReport(initiator.name, peer.name, session_id, "aborted", exc.record, 0)
    sid = SessionId(session_id)
    bits = rec.budget.bits
    note(
        "commitKey",
        initiator.registry.commit_key(sid, peer.address, KeyHash(commitment(session_id, rec.alice_block)), bits, ttl_s),
    )
    confirmed = peer.registry.confirm_key(sid, KeyHash(commitment(session_id, rec.bob_block)))
    note("confirmKey", confirmed)
    if SessionState(confirmed.event("KeyConfirmed").args["state"]) is not SessionState.AGREED:
        return KeySessionReport(initiator.name, peer.name, session_id, "mismatch", rec.record, 0)
    initiator.pool.add_key(peer.name, session_id, amplify(rec.alice_block, rec.budget, rec.toeplitz_seed))
    peer.pool.add_key(initiator.name, session_id, amplify(rec.bob_block, rec.budget, rec.toeplitz_seed))
    return KeySessionReport(initiator.name, peer.name, session_id, "agreed", rec.record, bits)
