"""The execution-apis OpenRPC spec vendored in ``execution-apis/``: its methods, and their
params and results checked against the spec's JSON Schemas (draft 7, as OpenRPC 1.x uses).

The spec is split the way the upstream build reads it: method files (lists of OpenRPC method
objects) and schema files (maps of name to schema), whose ``$ref: '#/components/schemas/X'``
point into the union of all schema files. Validation embeds that union as ``components`` in
the root of every schema it builds, so each ``$ref`` resolves where the spec's own
``openrpc.json`` would put it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

SPEC_DIR = Path(__file__).resolve().parent / "execution-apis" / "src"
METHOD_DIRS = ("eth", "debug")

# Schemas of the spec that cannot be used as written: (why, keyword, the keyword it becomes).
ERRATA: dict[str, tuple[str, str, str]] = {
    "FilterResults": (
        "its oneOf alternatives (an array of hashes, an array of logs) both match the empty array, "
        "so oneOf rejects every empty eth_getLogs/eth_getFilterChanges result; as anyOf it accepts "
        "the empty array and nothing else besides",
        "oneOf",
        "anyOf",
    ),
}

# Properties by which the spec's oneOf/anyOf alternatives are told apart (a transaction's
# ``type``, a simulated call's ``status``, an error's ``code``): an alternative that fails on
# one of these is not the one the value meant, so its errors are not reported.
DISCRIMINATORS = frozenset({"type", "status", "code"})


@dataclass(frozen=True)
class Param:
    name: str
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class SpecMethod:
    """One OpenRPC method: its positional params, its result schema and its examples."""

    name: str
    source: str  # the YAML file it comes from, relative to ``SPEC_DIR``
    params: tuple[Param, ...]
    result: dict[str, Any]
    examples: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Problem:
    """One place where a value breaks a schema: its JSON path, why, and the value there."""

    path: str
    message: str
    value: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (value: {self.value})"


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenRpcSpec:
    """The methods and schemas under ``directory`` (``SPEC_DIR`` by default).

    Raises:
        FileNotFoundError: no method files there.
        ValueError: two schema files define the same name, or two files the same method.
    """

    def __init__(self, directory: Path = SPEC_DIR) -> None:
        schemas: dict[str, Any] = {}
        for path in sorted((directory / "schemas").glob("*.yaml")):
            for name, schema in yaml.safe_load(path.read_text()).items():
                if name in schemas:
                    raise ValueError(f"schema {name} defined twice ({path.name})")
                schemas[name] = schema
        for name, (_why, keyword, replacement) in ERRATA.items():
            schemas[name] = {replacement if k == keyword else k: v for k, v in schemas[name].items()}
        self.schemas: Mapping[str, Any] = schemas
        methods: dict[str, SpecMethod] = {}
        for sub in METHOD_DIRS:
            for path in sorted((directory / sub).glob("*.yaml")):
                for entry in yaml.safe_load(path.read_text()):
                    if entry["name"] in methods:
                        raise ValueError(f"method {entry['name']} defined twice ({path.name})")
                    methods[entry["name"]] = SpecMethod(
                        name=entry["name"],
                        source=f"{sub}/{path.name}",
                        params=tuple(
                            Param(p["name"], bool(p.get("required", False)), p["schema"]) for p in entry["params"]
                        ),
                        result=entry["result"]["schema"],
                        examples=tuple(entry.get("examples", ())),
                    )
        if not methods:
            raise FileNotFoundError(f"no OpenRPC method files under {directory}")
        self.methods: Mapping[str, SpecMethod] = methods

    def schema(self, name: str) -> dict[str, Any]:
        """A reference to the spec's schema ``name``, to use as a result schema."""
        if name not in self.schemas:
            raise KeyError(f"the spec has no schema {name}")
        return {"$ref": f"#/components/schemas/{name}"}

    def validator(self, schema: Mapping[str, Any]) -> Draft7Validator:
        """A validator for ``schema`` whose ``$ref``s resolve into the spec's components."""
        root = {"allOf": [copy.deepcopy(dict(schema))], "components": {"schemas": self.schemas}}
        Draft7Validator.check_schema(root)
        return Draft7Validator(root)

    def problems(self, schema: Mapping[str, Any], value: Any) -> list[Problem]:
        """Every place where ``value`` breaks ``schema``, the alternatives it did not mean left out."""
        found: list[Problem] = []
        for error in self.validator(schema).iter_errors(value):
            found.extend(_leaves(error))
        unique = {(p.path, p.message): p for p in found}
        return sorted(unique.values(), key=lambda p: (p.path, p.message))

    def result_problems(self, method: str, value: Any, schema: Mapping[str, Any] | None = None) -> list[Problem]:
        """Where ``value`` breaks ``method``'s result schema (or ``schema``, a narrower one)."""
        return self.problems(schema if schema is not None else self.methods[method].result, value)

    def param_problems(self, method: str, params: Sequence[Any]) -> list[Problem]:
        """Where positional ``params`` break ``method``'s params (missing, surplus or invalid)."""
        spec = self.methods[method]
        found: list[Problem] = []
        if len(params) > len(spec.params):
            found.append(Problem("$", f"{len(params)} params, the spec has {len(spec.params)}", _short(params)))
        for index, param in enumerate(spec.params):
            if index >= len(params):
                if param.required:
                    found.append(Problem(f"$[{index}]", f"required param {param.name!r} missing", "-"))
                continue
            for problem in self.problems(param.schema, params[index]):
                found.append(Problem(f"$[{index}]" + problem.path[1:], problem.message, problem.value))
        return found


def _is_discriminated_out(error: ValidationError) -> bool:
    """An alternative's error saying the value is not that alternative at all."""
    path = list(error.relative_path)
    if all(isinstance(step, int) for step in path):  # the value, or an item of it, is of another kind
        return error.validator in ("type", "const", "enum")
    return len(path) == 1 and path[0] in DISCRIMINATORS and error.validator in ("pattern", "const", "enum")


def _branches(error: ValidationError) -> dict[Any, list[ValidationError]]:
    """The errors of each alternative of a failed oneOf/anyOf, by the alternative's index."""
    by_branch: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    return by_branch


def _all_leaves(errors: Iterable[ValidationError]) -> list[ValidationError]:
    leaves: list[ValidationError] = []
    for error in errors:
        if error.context:
            leaves.extend(_all_leaves(error.context))
        else:
            leaves.append(error)
    return leaves


def _leaves(error: ValidationError) -> list[Problem]:
    """The errors that say what is wrong: inside a failed oneOf/anyOf, those of the alternatives
    the value meant (not discriminated out; if several, the ones with the fewest errors)."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        shown = error.instance
        if error.validator in ("required", "additionalProperties") and isinstance(shown, dict):
            shown = {"keys": sorted(shown)}  # what the object has says more than its values
        return [Problem(error.json_path, error.message, _short(shown))]
    branches = _branches(error)
    meant = {k: v for k, v in branches.items() if not any(_is_discriminated_out(e) for e in _all_leaves(v))}
    if not meant:  # the value is none of the alternatives: say so, with what each wanted
        wanted = "; ".join(
            f"alternative {k}: {e.message}" for k, errors in branches.items() for e in _all_leaves(errors)[:1]
        )
        return [Problem(error.json_path, f"matches none of the {error.validator} alternatives ({wanted})",
                        _short(error.instance))]  # fmt: skip
    fewest = min(len(_all_leaves(v)) for v in meant.values())
    problems: list[Problem] = []
    for errors in meant.values():
        if len(_all_leaves(errors)) == fewest:
            for sub in errors:
                problems.extend(_leaves(sub))
    return problems
