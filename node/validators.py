"""The validator set: from genesis, then changed through the KeyRegistry's validator role.

As Besu's contract-based validator selection, the set lives on chain: the registry's
admin (the Trusted Authority) adds an RSU with ``addValidator`` and removes it with
``removeMember``. Every node reads the change from the same final block's logs
(``MemberAdded(account, Role.Validator)`` / ``MemberRemoved(account, Role.Validator)``
emitted by the genesis registry), so the set after block h, written in h's header as
``validators``, is identical on every node and validates block h + 1. Only the genesis
registry counts: a contract that merely emits look-alike events changes nothing. The
set is kept sorted; a removal that would leave it empty is ignored, since no block could
ever be final again.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_utils.crypto import keccak

from node.engine.base import LogEntry

MEMBER_ADDED = keccak(text="MemberAdded(address,uint8)")
MEMBER_REMOVED = keccak(text="MemberRemoved(address,uint8)")
ROLE_VALIDATOR = 1


def next_validators(current: tuple[str, ...], registry: str | None, logs: Iterable[LogEntry]) -> tuple[str, ...]:
    """The validator set after a block with ``logs``, executed under ``current``."""
    if registry is None:
        return current
    members = set(current)
    for log in logs:
        if log.address != registry or len(log.topics) != 2 or len(log.data) != 32:
            continue
        if int.from_bytes(log.data, "big") != ROLE_VALIDATOR:
            continue
        account = "0x" + log.topics[1][-20:].hex()
        if log.topics[0] == MEMBER_ADDED:
            members.add(account)
        elif log.topics[0] == MEMBER_REMOVED and members - {account}:
            members.discard(account)
    return tuple(sorted(members))
