"""Compile the Solidity sources with py-solc-x driving solcjs (npm ``solc``).

There is no native solc download on our machines, so py-solc-x is pointed at the
``solcjs-standard-json`` shim beside this file. The compiler version is pinned;
a different solcjs is refused rather than silently producing other bytecode.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import solcx
from solcx.exceptions import SolcError

from contracts.artifact import (
    CONTRACTS_DIR,
    Artifact,
    ArtifactError,
    artifact_path,
    source_path,
    source_sha256,
)

SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
CONTRACT_NAMES: tuple[str, ...] = ("KeyRegistry",)
SHIM = CONTRACTS_DIR / "solcjs-standard-json"


class CompilerError(ArtifactError):
    """The compiler is missing, has the wrong version, or rejected the source."""


def compiler_version() -> str:
    """The full version string of the solcjs behind the shim (e.g. ``0.8.28+commit.7893614a``).

    Raises:
        CompilerError: solcjs is missing or is not the pinned version.
    """
    try:
        version = solcx.wrapper.get_version_str_from_solc_binary(SHIM)
    except (OSError, subprocess.CalledProcessError, SolcError) as exc:
        raise CompilerError(f"cannot run solcjs through {SHIM}: {exc}") from exc
    if not version.startswith(SOLC_VERSION + "+"):
        raise CompilerError(f"solcjs {version} found, {SOLC_VERSION} is pinned")
    return version


def compile_contract(name: str = "KeyRegistry") -> Artifact:
    """Compile ``contracts/<name>.sol`` and return its artifact (not written).

    Raises:
        CompilerError: compiler missing or wrong, or the source does not compile.
    """
    version = compiler_version()
    standard_input = {
        "language": "Solidity",
        "sources": {f"{name}.sol": {"content": source_path(name).read_text()}},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    # solcjs resolves nothing from disk here, but runs from a scratch dir so that it
    # cannot pick up stray files.
    with tempfile.TemporaryDirectory() as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            output = solcx.compile_standard(standard_input, solc_binary=SHIM)
        except SolcError as exc:
            raise CompilerError(f"{name}.sol does not compile:\n{exc}") from exc
        finally:
            os.chdir(cwd)
    contract = output["contracts"][f"{name}.sol"][name]
    return Artifact(
        contract_name=name,
        abi=tuple(contract["abi"]),
        bytecode=bytes.fromhex(contract["evm"]["bytecode"]["object"]),
        deployed_bytecode=bytes.fromhex(contract["evm"]["deployedBytecode"]["object"]),
        compiler_version=version,
        evm_version=EVM_VERSION,
        optimizer_runs=OPTIMIZER_RUNS,
        source_sha256=source_sha256(name),
    )


def write_artifact(artifact: Artifact) -> Path:
    """Write an artifact atomically (temp file + rename) and return its path."""
    path = artifact_path(artifact.contract_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(artifact.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def compile_all() -> list[Path]:
    """Compile every contract and write its artifact; returns the paths written."""
    return [write_artifact(compile_contract(name)) for name in CONTRACT_NAMES]
