"""Finality proofs: a block with a quorum of commit seals is final to anyone who knows the validators.

A syncing node runs :func:`verify_finality` on each block it fetches from a peer
before it appends the block (the seals are what ``Decide`` hands to the node).
"""

from __future__ import annotations

from collections.abc import Sequence

from node.consensus.blocks import BlockOps
from node.consensus.errors import DuplicateSeal, SealNotFromValidator, TooFewSeals
from node.consensus.messages import recover_signer
from node.consensus.quorum import quorum


def verify_finality(block: bytes, seals: Sequence[bytes], validators: Sequence[str], ops: BlockOps) -> None:
    """Check that ``seals`` prove ``block`` final under the validator set of its height.

    Each seal is a 65-byte recoverable signature over ``ops.digest(block)``.

    Raises:
        BadSignature: a seal is malformed or recovers no key.
        SealNotFromValidator: a seal recovers to an address outside ``validators``
            (forged, or a signature over another block).
        DuplicateSeal: two seals by the same validator.
        TooFewSeals: fewer than a quorum of seals.
    """
    digest = ops.digest(block)
    members = set(validators)
    signers: set[str] = set()
    for seal in seals:
        signer = recover_signer(digest, seal)
        if signer not in members:
            raise SealNotFromValidator(signer, ops.height(block))
        if signer in signers:
            raise DuplicateSeal(signer)
        signers.add(signer)
    need = quorum(len(members))
    if len(signers) < need:
        raise TooFewSeals(len(signers), need)
