"""Revocation lists (eq. 10): which pseudonyms a verifier must refuse.

The ledger is the source of truth: :class:`RegistryRevocationList` follows the
KeyRegistry's ``IdentityRevoked`` events. Pseudonym ids are ``keccak256(SID)``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from node.client.registry import KeyRegistry


@runtime_checkable
class RevocationSource(Protocol):
    def is_revoked(self, pseudonym_id: bytes) -> bool: ...


class RevocationList:
    """An in-memory set of revoked pseudonym ids."""

    def __init__(self, revoked: set[bytes] | None = None) -> None:
        self._revoked: set[bytes] = set(revoked or ())

    def revoke(self, pseudonym_id: bytes) -> None:
        self._revoked.add(bytes(pseudonym_id))

    def is_revoked(self, pseudonym_id: bytes) -> bool:
        return bytes(pseudonym_id) in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)


class RegistryRevocationList(RevocationList):
    """Kept in sync with a KeyRegistry's ``IdentityRevoked`` events.

    ``sync()`` reads only the blocks it has not seen, so calling it before every
    verification batch is cheap.
    """

    def __init__(self, registry: KeyRegistry) -> None:
        super().__init__()
        self._registry = registry
        self._next_block = registry.deployed_at_block

    def sync(self) -> int:
        """Fetch revocations up to the latest block; returns how many were new.

        Raises:
            node.errors.NodeError: the chain could not be read.
        """
        latest = self._registry.w3.eth.block_number
        if latest < self._next_block:
            return 0
        before = len(self)
        for event in self._registry.events("IdentityRevoked", from_block=self._next_block, to_block=latest):
            self.revoke(event.args["pseudonymId"])
        self._next_block = latest + 1
        return len(self) - before
