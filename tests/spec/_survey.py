"""Call every spec method on a live JSON-RPC endpoint and check each answer against the spec.

A method is *implemented* unless the endpoint answers its first call with -32601 (method not
found); an implemented method is *schema-valid* when every call returned a result (not an
error) that its result schema accepts. The outcomes of each endpoint are kept in the pytest
stash under :data:`SURVEYS`; ``conftest.py`` prints them side by side after the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.spec._openrpc import OpenRpcSpec

METHOD_NOT_FOUND = -32601

# Each method's calls: a function run just before the calls (so that nonces are current)
# that gives the params of each call, the first one deciding whether the method exists.
Cases = Mapping[str, Callable[[], list[list[Any]]]]


class RpcReplyError(Exception):
    """The endpoint answered a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.method, self.code, self.message = method, code, message


class Rpc:
    """A JSON-RPC 2.0 client over HTTP, one request per call."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self._timeout = timeout_s
        self._ids = itertools.count(1)
        self._http = requests.Session()

    def call(self, method: str, params: list[Any]) -> Any:
        """The result of ``method``.

        Raises:
            RpcReplyError: the endpoint answered an error object.
            requests.RequestException: no HTTP answer, or not JSON.
        """
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = self._http.post(self.url, json=body, timeout=self._timeout)
        reply.raise_for_status()
        answer = reply.json()
        if "error" in answer:
            error = answer["error"]
            raise RpcReplyError(method, int(error.get("code", 0)), str(error.get("message", "")))
        return answer["result"]

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class Outcome:
    """What one spec method did on one endpoint."""

    method: str
    implemented: bool
    errors: tuple[str, ...] = ()  # calls answered with a JSON-RPC error instead of a result
    problems: tuple[str, ...] = ()  # where results break the result schema: JSON path, why, value
    param_problems: tuple[str, ...] = ()  # where the test's own params break the spec

    @property
    def valid(self) -> bool:
        return self.implemented and not self.errors and not self.problems


def survey(spec: OpenRpcSpec, rpc: Rpc, cases: Cases, narrowed: Mapping[str, dict[str, Any]]) -> dict[str, Outcome]:
    """Call each spec method with its ``cases`` and check the results.

    ``narrowed``: result schemas to use instead of the spec's, by method, where the spec allows
    several shapes and the params given select one of them.

    Raises:
        KeyError: ``cases`` lacks a spec method.
    """
    outcomes: dict[str, Outcome] = {}
    for name in spec.methods:
        errors: list[str] = []
        problems: list[str] = []
        param_problems: list[str] = []
        implemented = True
        for index, params in enumerate(cases[name]()):
            label = f"call {index} {_brief(params)}"
            param_problems.extend(f"{label}: {p}" for p in spec.param_problems(name, params))
            try:
                result = rpc.call(name, params)
            except RpcReplyError as exc:
                if exc.code == METHOD_NOT_FOUND and index == 0:
                    implemented = False
                    break
                errors.append(f"{label}: answered error {exc.code}: {exc.message[:200]}")
                continue
            problems.extend(f"{label}: {p}" for p in spec.result_problems(name, result, narrowed.get(name)))
        outcomes[name] = Outcome(name, implemented, tuple(errors), tuple(problems), tuple(param_problems))
    return outcomes


def _brief(params: list[Any], limit: int = 90) -> str:
    text = repr(params)
    return text if len(text) <= limit else text[: limit - 4] + "...]"


SURVEYS = pytest.StashKey[dict[str, dict[str, Outcome]]]()


def summary_lines(surveys: Mapping[str, Mapping[str, Outcome]]) -> list[str]:
    """A table of every spec method's outcome per endpoint, and each endpoint's counts."""
    endpoints = list(surveys)
    methods = list(next(iter(surveys.values())))
    width = max(len(m) for m in methods)
    lines = [f"{'method':<{width}}  " + "  ".join(f"{e:<14}" for e in endpoints)]
    for method in methods:
        cells = []
        for endpoint in endpoints:
            outcome = surveys[endpoint].get(method)
            if outcome is None:
                cells.append("?")
            elif not outcome.implemented:
                cells.append("-")
            else:
                cells.append("schema-valid" if outcome.valid else "INVALID")
        lines.append(f"{method:<{width}}  " + "  ".join(f"{c:<14}" for c in cells))
    for endpoint, outcomes in surveys.items():
        implemented = sum(o.implemented for o in outcomes.values())
        valid = sum(o.valid for o in outcomes.values())
        lines.append(f"{endpoint}: {implemented} of {len(outcomes)} spec methods implemented, {valid} schema-valid")
        for outcome in outcomes.values():
            if outcome.implemented and not outcome.valid:
                first = (outcome.errors + outcome.problems)[0]
                lines.append(f"  {outcome.method}: {first[:240]}")
    return lines
