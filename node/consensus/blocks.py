"""The seam to the application: what the consensus machine needs to know about blocks.

The machine treats a block as opaque bytes. It never builds one (it asks with a
``BuildBlock`` action) and never executes one; it asks the application through
``BlockOps``. Implementations raise :class:`~node.consensus.errors.InvalidBlock`
(or any :class:`~node.errors.NodeError`) for bytes that are not a block; the
machine turns that into a refusal of the message that carried them.
"""

from __future__ import annotations

from typing import Protocol


class BlockOps(Protocol):
    """Block operations the QBFT machine needs from the application."""

    def digest(self, block: bytes) -> bytes:
        """The 32-byte hash that PREPAREs name and commit seals sign: covers the round, not the seals."""
        ...

    def with_round(self, block: bytes, round: int) -> bytes:
        """The same block content re-stamped for ``round`` (re-proposal of a prepared block)."""
        ...

    def height(self, block: bytes) -> int:
        """The height the block is for."""
        ...

    def round(self, block: bytes) -> int:
        """The QBFT round the block is stamped with."""
        ...

    def validate(self, block: bytes) -> bool:
        """Application validity (the node executes the block speculatively); ``False`` refuses it."""
        ...
