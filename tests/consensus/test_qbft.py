"""The machine's rules, driven message by message with hand-signed messages from validators 0..3."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from node.consensus.errors import (
    Equivocation,
    FarFutureHeight,
    InvalidBlock,
    InvalidCommitSeal,
    InvalidConfig,
    InvalidJustification,
    NotAValidator,
    WrongProposer,
)
from node.consensus.messages import Commit, Prepare, Proposal, RoundChange, Signed, encode, sign
from node.consensus.qbft import (
    Broadcast,
    BuildBlock,
    Decide,
    FutureMessage,
    QbftConfig,
    QbftMachine,
    Refused,
    SetTimer,
)
from tests.consensus.conftest import HEIGHT, Net, broadcasts


def refusals(actions: Sequence[object]) -> list[type]:
    return [type(a.reason) for a in actions if isinstance(a, Refused)]


def test_single_validator_decides_alone(net: Net) -> None:
    machine = QbftMachine(net.keys[0].secret, net.ops, lambda h: [net.addresses[0]], 1)
    actions = machine.work_available()
    assert BuildBlock(1, 0) in actions
    actions = machine.block_built(net.ops.make(1, 0, net.addresses[0], b"txs"))
    decides = [a for a in actions if isinstance(a, Decide)]
    assert len(decides) == 1 and decides[0].height == 1 and len(decides[0].seals) == 1
    assert [type(m.payload) for m in broadcasts(actions)] == [Proposal, Prepare, Commit]


def test_idle_height_does_nothing(net: Net) -> None:
    machine = net.machine(net.proposer(HEIGHT, 0))
    assert machine.timer_expired(HEIGHT, 0) == []
    assert machine.round == 0
    actions = machine.work_available()
    assert SetTimer(HEIGHT, 0, 1.0) in actions and BuildBlock(HEIGHT, 0) in actions


def test_happy_path_prepare_commit_decide(net: Net) -> None:
    machine = net.machine(0)
    block = net.block(0)
    actions = machine.handle(net.wire(net.proposer(HEIGHT, 0), Proposal(HEIGHT, 0, block)))
    assert [type(m.payload) for m in broadcasts(actions)] == [Prepare]
    for i in (1, 2):
        actions = machine.handle(encode_prepare(net, i, 0, block))
    assert [type(m.payload) for m in broadcasts(actions)] == [Commit]
    assert machine.handle(net.commit(1, 0, block)) == []
    actions = machine.handle(net.commit(2, 0, block))
    assert [type(a) for a in actions] == [Decide]
    decide = actions[0]
    assert isinstance(decide, Decide) and decide.block == block and len(decide.seals) == 3


def encode_prepare(net: Net, node: int, round_: int, block: bytes) -> bytes:
    return encode(net.prepares([node], round_, block)[0])


def test_duplicates_count_once(net: Net) -> None:
    machine = net.machine(0)
    block = net.block(0)
    machine.handle(net.wire(net.proposer(HEIGHT, 0), Proposal(HEIGHT, 0, block)))
    for _ in range(3):
        assert broadcasts(machine.handle(encode_prepare(net, 1, 0, block))) == []


def test_messages_from_non_validators_are_refused(net: Net) -> None:
    machine = net.machine(0)
    block = net.block(0)
    actions = machine.handle(encode_prepare(net, 4, 0, block))
    assert refusals(actions) == [NotAValidator]


def test_validator_removed_at_a_height_is_ignored(net: Net) -> None:
    def validators(height: int) -> list[str]:
        return net.addresses[:4] if height < 2 else net.addresses[:3]

    machine = QbftMachine(net.keys[0].secret, net.ops, validators, 2)
    block = net.block(0, height=2, by=2)
    actions = machine.handle(encode_prepare(net, 3, 0, block))
    assert refusals(actions) == [NotAValidator]
    removed = QbftMachine(net.keys[3].secret, net.ops, validators, 2)
    assert not removed.is_validator and removed.work_available() == []


def test_wrong_proposer_and_invalid_block(net: Net) -> None:
    machine = net.machine(0)
    assert refusals(machine.handle(net.wire(3, Proposal(HEIGHT, 0, net.block(0))))) == [WrongProposer]
    bad = net.block(0, payload=b"invalid txs")
    assert refusals(machine.handle(net.wire(net.proposer(HEIGHT, 0), Proposal(HEIGHT, 0, bad)))) == [InvalidBlock]
    restamped = net.ops.with_round(net.block(0), 1)
    assert refusals(machine.handle(net.wire(net.proposer(HEIGHT, 0), Proposal(HEIGHT, 0, restamped)))) == [InvalidBlock]


def test_only_the_first_proposal_of_a_round_counts(net: Net) -> None:
    machine = net.machine(0)
    proposer = net.proposer(HEIGHT, 0)
    machine.handle(net.wire(proposer, Proposal(HEIGHT, 0, net.block(0))))
    second = machine.handle(net.wire(proposer, Proposal(HEIGHT, 0, net.block(0, payload=b"other"))))
    assert refusals(second) == [Equivocation] and broadcasts(second) == []


def test_commit_with_a_forged_seal_is_refused(net: Net) -> None:
    machine = net.machine(0)
    block = net.block(0)
    digest = net.ops.digest(block)
    seal = net.keys[2].sign_recoverable(digest, hasher=None)  # 2's seal in 1's commit
    forged = sign(Commit(HEIGHT, 0, digest, seal), net.keys[1])
    assert refusals(machine.handle(forged)) == [InvalidCommitSeal]


def test_timeout_moves_to_next_round_with_backoff(net: Net) -> None:
    machine = net.machine(0)
    machine.work_available()
    actions = machine.timer_expired(HEIGHT, 0)
    assert machine.round == 1
    assert SetTimer(HEIGHT, 1, 2.0) in actions
    (change,) = broadcasts(actions)
    assert isinstance(change.payload, RoundChange)
    assert change.payload.round == 1 and change.payload.prepared_round is None
    assert machine.timer_expired(HEIGHT, 0) == []  # stale timer
    machine.timer_expired(HEIGHT, 1)
    assert machine.round == 2


def test_f_plus_one_round_changes_skip_rounds(net: Net) -> None:
    machine = net.machine(0)
    assert broadcasts(machine.handle(encode(net.round_change(1, 5)))) == []
    actions = machine.handle(encode(net.round_change(2, 3)))
    assert machine.round == 3  # the highest round f+1 = 2 senders reach
    assert [m.payload.round for m in broadcasts(actions)] == [3]


def test_prepared_block_is_reproposed(net: Net) -> None:
    proposer = net.proposer(HEIGHT, 1)
    machine = net.machine(proposer)
    block = net.block(0)
    prepares = net.prepares([0, 1, 3], 0, block)
    machine.handle(encode(net.round_change(0, 1, (0, block, prepares))))
    actions = machine.handle(encode(net.round_change(1, 1)))
    proposals = [m.payload for m in broadcasts(actions) if isinstance(m.payload, Proposal)]
    assert len(proposals) == 1
    assert proposals[0].block == net.ops.with_round(block, 1)
    assert proposals[0].prepare_justification == prepares
    assert len(proposals[0].round_change_justification) == 3
    assert not any(isinstance(a, BuildBlock) for a in actions)


def test_round_change_quorum_without_prepared_value_builds(net: Net) -> None:
    proposer = net.proposer(HEIGHT, 1)
    machine = net.machine(proposer)
    machine.handle(encode(net.round_change(0, 1)))
    actions = machine.handle(encode(net.round_change(1, 1)))
    assert BuildBlock(HEIGHT, 1) in actions
    actions = machine.block_built(net.block(1))
    (proposal,) = [m.payload for m in broadcasts(actions) if isinstance(m.payload, Proposal)]
    assert proposal.round == 1 and len(proposal.round_change_justification) == 3


def justified(net: Net, round_: int = 1) -> tuple[Signed[RoundChange], ...]:
    return tuple(net.round_change(i, round_) for i in (0, 1, 3))


def test_proposal_for_a_later_round_needs_justification(net: Net) -> None:
    machine = net.machine(0)
    proposer = net.proposer(HEIGHT, 1)
    block = net.block(1)
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, block)))) == [InvalidJustification]
    too_few = justified(net)[:2]
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, block, too_few)))) == [InvalidJustification]
    other_round = tuple(net.round_change(i, 2) for i in (0, 1, 3))
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, block, other_round)))) == [
        InvalidJustification
    ]
    outsider = (*justified(net)[:2], net.round_change(4, 1))
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, block, outsider)))) == [InvalidJustification]
    assert machine.round == 0
    actions = machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, block, justified(net))))
    assert machine.round == 1  # a justified proposal for a later round moves us there
    assert [type(m.payload) for m in broadcasts(actions)] == [Prepare]


def test_proposal_must_carry_the_highest_prepared_value(net: Net) -> None:
    machine = net.machine(0)
    proposer = net.proposer(HEIGHT, 1)
    prepared = net.block(0)
    prepares = net.prepares([0, 1, 3], 0, prepared)
    with_value = net.round_change(0, 1, (0, prepared, prepares))
    changes = (sign(with_value.payload.stripped(), net.keys[0]), net.round_change(1, 1), net.round_change(3, 1))
    fresh = net.block(1, payload=b"something else")
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, fresh, changes, prepares)))) == [
        InvalidJustification
    ]
    reproposed = net.ops.with_round(prepared, 1)
    short = prepares[:2]
    assert refusals(machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, reproposed, changes, short)))) == [
        InvalidJustification
    ]
    actions = machine.handle(net.wire(proposer, Proposal(HEIGHT, 1, reproposed, changes, prepares)))
    assert refusals(actions) == [] and machine.round == 1


def test_prepared_round_change_needs_a_valid_certificate(net: Net) -> None:
    machine = net.machine(0)
    block = net.block(0)
    weak = net.round_change(1, 1, (0, block, net.prepares([1, 3], 0, block)))
    assert refusals(machine.handle(encode(weak))) == [InvalidJustification]


def test_future_heights_are_buffered_then_replayed(net: Net) -> None:
    machine = net.machine(0)
    block2 = net.block(0, height=2)
    actions = machine.handle(net.wire(net.proposer(2, 0), Proposal(2, 0, block2)))
    assert actions == [FutureMessage(2, net.addresses[net.proposer(2, 0)])]
    far = net.block(0, height=HEIGHT + 9)
    actions = machine.handle(net.wire(net.proposer(HEIGHT + 9, 0), Proposal(HEIGHT + 9, 0, far)))
    assert refusals(actions) == [FarFutureHeight]
    actions = machine.start_height(2)
    assert [type(m.payload) for m in broadcasts(actions)] == [Prepare]


def test_past_heights_are_ignored(net: Net) -> None:
    machine = net.machine(0, height=3)
    assert machine.handle(encode_prepare(net, 1, 0, net.block(0))) == []


def test_bad_configuration_is_refused(net: Net) -> None:
    with pytest.raises(InvalidConfig):
        QbftConfig(base_timeout=0)
    with pytest.raises(InvalidConfig):
        QbftMachine(b"\x00" * 32, net.ops, net.validators, 1)
    with pytest.raises(InvalidConfig):
        QbftMachine(net.keys[0].secret, net.ops, lambda h: [], 1)


def test_garbage_is_refused_not_raised(net: Net) -> None:
    machine = net.machine(0)
    assert len(refusals(machine.handle(b"\xff\x00garbage"))) == 1
    assert all(not isinstance(a, Broadcast) for a in machine.handle(b""))
