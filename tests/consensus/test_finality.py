"""verify_finality: a quorum of distinct validators' seals over the block digest, nothing else."""

from __future__ import annotations

import pytest

from node.consensus.errors import BadSignature, DuplicateSeal, NotAValidator, SealNotFromValidator, TooFewSeals
from node.consensus.finality import verify_finality
from tests.consensus.conftest import Net


def seals(net: Net, block: bytes, nodes: list[int]) -> list[bytes]:
    digest = net.ops.digest(block)
    return [net.keys[i].sign_recoverable(digest, hasher=None) for i in nodes]


def test_quorum_of_seals_is_final(net: Net) -> None:
    block = net.block(0)
    verify_finality(block, seals(net, block, [0, 1, 3]), net.validators(1), net.ops)
    verify_finality(block, seals(net, block, [0, 1, 2, 3]), net.validators(1), net.ops)


def test_too_few_seals(net: Net) -> None:
    block = net.block(0)
    with pytest.raises(TooFewSeals) as info:
        verify_finality(block, seals(net, block, [0, 1]), net.validators(1), net.ops)
    assert (info.value.have, info.value.need) == (2, 3)


def test_duplicate_seal(net: Net) -> None:
    block = net.block(0)
    with pytest.raises(DuplicateSeal):
        verify_finality(block, seals(net, block, [0, 1, 1]), net.validators(1), net.ops)


def test_seal_over_another_block_is_forged(net: Net) -> None:
    block, other = net.block(0), net.block(0, payload=b"other")
    forged = [*seals(net, block, [0, 1]), *seals(net, other, [3])]
    with pytest.raises(SealNotFromValidator):
        verify_finality(block, forged, net.validators(1), net.ops)


def test_seal_from_a_non_validator(net: Net) -> None:
    block = net.block(0)
    with pytest.raises(NotAValidator):
        verify_finality(block, seals(net, block, [0, 1, 4]), net.validators(1), net.ops)


def test_malformed_seal(net: Net) -> None:
    block = net.block(0)
    with pytest.raises(BadSignature):
        verify_finality(block, [*seals(net, block, [0, 1]), b"\x00" * 65], net.validators(1), net.ops)
    with pytest.raises(BadSignature):
        verify_finality(block, [b"\x01" * 10], net.validators(1), net.ops)
