"""Coalition formation among providers (seed eq. 38-44), run to a stable partition.

State: a partition of the providers into coalitions (the seed's symmetric cooperation
matrix ``p_{s,l}`` is exactly a partition, eq. 39). A provider's cost ``δ_s`` is its Shapley
share of its own coalition's cost (eq. 37 on the sub-game) plus, when the coalition has two
or more members, its cooperation overhead (eq. 9-10 and ``C^coc``). Each iteration every
provider revises with probability ``λ`` (eq. 43): it moves to the option with the lowest
``δ_s`` (join another coalition or stand alone, eq. 41), but with probability ``ℵ`` it picks
a random option instead (eq. 44's mistakes). The run stops at the first partition where no
provider has a strictly cheaper unilateral move (Nash-stable: eq. 40), checked exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qkd.planning.errors import InvalidModel
from qkd.planning.shapley import Game, exact_shapley

Partition = tuple[frozenset[str], ...]


def _canon(coalitions: Sequence[frozenset[str]]) -> Partition:
    return tuple(sorted((c for c in coalitions if c), key=lambda c: sorted(c)))


@dataclass(frozen=True)
class FormationResult:
    partition: Partition
    stable: bool
    iterations: int
    history: tuple[Partition, ...]
    costs: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": [sorted(c) for c in self.partition],
            "stable": self.stable,
            "iterations": self.iterations,
            "history": [[sorted(c) for c in p] for p in self.history],
            "costs": self.costs,
        }


class CoalitionCosts:
    """``δ_s(partition)``: Shapley share within its coalition plus the overhead when cooperating."""

    def __init__(self, v: Game, overhead: Callable[[str], float]) -> None:
        self.v, self.overhead = v, overhead
        self._shares: dict[frozenset[str], dict[str, float]] = {}

    def share(self, player: str, coalition: frozenset[str]) -> float:
        if coalition not in self._shares:
            self._shares[coalition] = exact_shapley(sorted(coalition), lambda s: self.v(s))
        extra = self.overhead(player) if len(coalition) > 1 else 0.0
        return self._shares[coalition][player] + extra

    def of(self, partition: Partition) -> dict[str, float]:
        return {p: self.share(p, c) for c in partition for p in c}


def _options(player: str, partition: Partition) -> list[Partition]:
    """Every partition reachable by ``player`` moving alone: join another coalition or stand alone."""
    rest = [c - {player} for c in partition]
    mine = next(c for c in partition if player in c)
    out = []
    if len(mine) > 1:
        out.append(_canon([*rest, frozenset({player})]))
    for i, c in enumerate(partition):
        if player not in c:
            moved = list(rest)
            moved[i] = c | {player}
            out.append(_canon(moved))
    return out


def is_stable(players: Sequence[str], partition: Partition, costs: CoalitionCosts, tol: float = 1e-9) -> bool:
    """No provider lowers its own cost by a unilateral move (eq. 40)."""
    now = costs.of(partition)
    for p in players:
        for option in _options(p, partition):
            if costs.of(option)[p] < now[p] - tol * max(1.0, abs(now[p])):
                return False
    return True


def form_coalitions(
    players: Sequence[str],
    costs: CoalitionCosts,
    update_prob: float = 0.5,
    mistake_prob: float = 0.05,
    seed: int = 0,
    max_iterations: int = 200,
    start: Partition | None = None,
) -> FormationResult:
    """Run the dynamics from ``start`` (default: everyone alone) until a stable partition.

    Raises :class:`InvalidModel` for probabilities outside [0, 1] (``update_prob`` must be > 0).
    """
    if not 0 < update_prob <= 1 or not 0 <= mistake_prob <= 1:
        raise InvalidModel("need 0 < λ <= 1 and 0 <= ℵ <= 1")
    rng = np.random.default_rng(seed)
    partition = start or _canon([frozenset({p}) for p in players])
    history = [partition]
    for it in range(max_iterations):
        if is_stable(players, partition, costs):
            return FormationResult(partition, True, it, tuple(history), costs.of(partition))
        current = costs.of(partition)
        for p in [players[i] for i in rng.permutation(len(players))]:
            if rng.random() >= update_prob:
                continue
            options = _options(p, partition)
            if not options:
                continue
            if rng.random() < mistake_prob:
                partition = options[int(rng.integers(len(options)))]
            else:
                best = min(options, key=lambda o: costs.of(o)[p])
                if costs.of(best)[p] < current[p]:
                    partition = best
            current = costs.of(partition)
        if partition != history[-1]:
            history.append(partition)
    stable = is_stable(players, partition, costs)
    return FormationResult(partition, stable, max_iterations, tuple(history), costs.of(partition))
