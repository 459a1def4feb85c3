"""Whole networks on the simulator: agreement, validity and liveness under faults and byzantine nodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.consensus.errors import NotAValidator
from node.consensus.finality import verify_finality
from node.consensus.messages import Prepare, encode, sign
from node.consensus.qbft import Refused
from node.consensus.sim import Equivocator, GarbageSender, LinkFaults, Mute, Simulation

SEEDS = settings(max_examples=20, derandomize=True, deadline=None)


def assert_safe(sim: Simulation) -> None:
    assert sim.agreement_violations() == []
    assert sim.validity_violations() == []


def heights(sim: Simulation, nodes: list[int] | None = None) -> list[int]:
    return [sim.height_of(i) for i in (range(sim.n) if nodes is None else nodes)]


@given(
    seed=st.integers(0, 2**32),
    n=st.sampled_from([4, 5, 7]),
    drop=st.sampled_from([0.0, 0.05, 0.2]),
    duplicate=st.sampled_from([0.0, 0.2]),
    max_delay=st.sampled_from([0.05, 0.5, 2.0]),
)
@SEEDS
def test_agreement_and_validity_under_random_faults(
    seed: int, n: int, drop: float, duplicate: float, max_delay: float
) -> None:
    sim = Simulation(n, seed=seed, blocks=3, faults=LinkFaults(0.001, max_delay, drop, duplicate))
    sim.give_work()
    sim.run(until=5000, stop_at_height=3)  # virtual seconds: rounds back off while links are slow
    assert_safe(sim)
    assert min(heights(sim)) == 3  # with delivery that is only lossy, everyone gets every block


@given(seed=st.integers(0, 2**32))
@settings(max_examples=10, derandomize=True, deadline=None)
def test_equivocating_proposer_cannot_split_decisions(seed: int) -> None:
    sim = Simulation(4, seed=seed, blocks=3, behaviours={2: Equivocator()}, faults=LinkFaults(0.001, 0.3))
    sim.give_work()
    sim.run(until=400)
    assert_safe(sim)
    assert min(heights(sim, sim.honest())) == 3


def test_garbage_sender_is_refused_and_harmless() -> None:
    sim = Simulation(4, seed=7, blocks=3, behaviours={1: GarbageSender()})
    sim.give_work()
    sim.run(until=200)
    assert_safe(sim)
    assert min(heights(sim)) == 3
    assert sim.refusals  # the noise was seen, and refused


def test_single_validator_decides_alone() -> None:
    sim = Simulation(1, blocks=4)
    sim.give_work()
    sim.run(until=10)
    assert heights(sim) == [4]
    assert all(not d.synced and d.round == 0 for d in sim.decisions[0].values())


def test_idle_network_makes_no_blocks_and_no_round_changes() -> None:
    sim = Simulation(4, blocks=3)
    sim.run(until=100)
    assert heights(sim) == [0, 0, 0, 0]
    assert all(m.round == 0 for m in sim.machines)


def test_silent_proposer_is_replaced_by_a_round_change() -> None:
    sim = Simulation(4, seed=3, blocks=1, behaviours={1: Mute()})  # node 1 proposes height 1, round 0
    sim.give_work()
    sim.run(until=100)
    assert heights(sim, sim.honest()) == [1, 1, 1]
    assert all(sim.decisions[i][1].round >= 1 for i in sim.honest())
    assert_safe(sim)


def test_one_crashed_of_four_keeps_deciding() -> None:
    sim = Simulation(4, seed=4, blocks=6)
    sim.crash(2, at=0.0)
    sim.give_work()
    sim.run(until=500)
    assert heights(sim, [0, 1, 3]) == [6, 6, 6]
    assert_safe(sim)


def test_two_crashed_of_four_stall_until_one_returns() -> None:
    sim = Simulation(4, seed=5, blocks=3)
    sim.crash(2, at=0.0)
    sim.crash(3, at=0.0)
    sim.give_work()
    sim.run(until=60)
    assert heights(sim) == [0, 0, 0, 0]
    sim.recover(3, at=60.0)
    sim.run(until=2000)
    assert heights(sim, [0, 1, 3]) == [3, 3, 3]
    assert_safe(sim)


def test_partition_two_two_stalls_then_heals() -> None:
    sim = Simulation(4, seed=6, blocks=4)
    sim.partition([{0, 1}, {2, 3}], at=0.0)
    sim.give_work()
    sim.run(until=50)
    assert heights(sim) == [0, 0, 0, 0]
    sim.heal(at=50.0)
    sim.run(until=2000)
    assert heights(sim) == [4, 4, 4, 4]
    assert_safe(sim)


def test_partition_mid_run_keeps_agreement() -> None:
    sim = Simulation(4, seed=8, blocks=6, faults=LinkFaults(0.01, 0.3))
    sim.give_work()
    sim.partition([{0, 1}, {2, 3}], at=1.0)
    sim.heal(at=40.0)
    sim.run(until=3000)
    assert heights(sim) == [6, 6, 6, 6]
    assert_safe(sim)


def test_liveness_once_delivery_resumes_after_drops() -> None:
    sim = Simulation(4, seed=9, blocks=3, faults=LinkFaults(0.01, 0.2, drop=1.0))
    sim.give_work()
    sim.set_faults(LinkFaults(0.01, 0.2), at=30.0)
    sim.run(until=30)
    assert heights(sim) == [0, 0, 0, 0]
    sim.run(until=2000)
    assert heights(sim) == [3, 3, 3, 3]
    assert_safe(sim)


def test_removed_validator_is_ignored_from_its_height() -> None:
    def validators(height: int) -> range:
        return range(4) if height < 2 else range(3)

    sim = Simulation(4, seed=10, blocks=3, validators=validators)
    sim.give_work()
    sim.run(until=300)
    assert heights(sim, [0, 1, 2]) == [3, 3, 3]
    assert_safe(sim)
    assert heights(sim, [3]) == [3]  # the removed validator follows the chain as an observer
    for decision in sim.decisions[3].values():
        verify_finality(decision.block, decision.seals, sim.validators(decision.height), sim.ops)
    # a message it signs for a height where it no longer validates does not count
    digest = sim.ops.digest(sim.decisions[0][3].block)
    stray = encode(sign(Prepare(sim.machines[0].height, 0, digest), sim.keys[3]))
    (refused,) = sim.machines[0].handle(stray)
    assert isinstance(refused, Refused) and isinstance(refused.reason, NotAValidator)
    for i in range(3):
        for decision in sim.decisions[i].values():
            if decision.height >= 2 and not decision.synced:
                assert len(decision.seals) == 2  # quorum of 3
