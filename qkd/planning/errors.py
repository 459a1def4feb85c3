"""Errors of :mod:`qkd.planning`: one branch of the :class:`qkd.errors.QkdError` tree.

Every error carries its data as attributes so callers never parse messages.
"""

from __future__ import annotations

from qkd.errors import QkdError


class PlanningError(QkdError):
    """Root of every error raised by :mod:`qkd.planning`."""


class MalformedFile(PlanningError, ValueError):
    """A topology, provider, cost, demand or devnet file cannot be read as the format requires.

    ``path`` names the file (or ``"<data>"`` for in-memory data), ``detail`` what is wrong.
    """

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path, self.detail = path, detail


class InvalidCosts(PlanningError, ValueError):
    """A cost is negative or missing; ``item`` names it (e.g. ``on_demand.transmitter``)."""

    def __init__(self, item: str, value: object) -> None:
        super().__init__(f"cost {item} must be a non-negative number, got {value!r}")
        self.item, self.value = item, value


class UnknownNode(PlanningError, KeyError):
    """A request or link names a node the topology does not have."""

    def __init__(self, node: str, topology: str) -> None:
        super().__init__(f"node {node!r} is not in topology {topology!r}")
        self.node, self.topology = node, topology

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class InvalidModel(PlanningError, ValueError):
    """A parameter of the model is out of range (capacities, demand bounds, scenario counts...)."""


class InfeasiblePlan(PlanningError):
    """No plan meets the demand within the fibre limits (W_max).

    ``request`` names the first request that no candidate route can carry (``None`` when only
    the solver found the instance infeasible, e.g. several requests together exceed a link).
    """

    def __init__(self, detail: str, request: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.request = detail, request


class SolverFailed(PlanningError):
    """HiGHS stopped without an optimal solution for a reason other than infeasibility
    (time limit, numerical trouble); ``status`` is scipy's status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HiGHS status {status}: {message}")
        self.status, self.message = status, message
