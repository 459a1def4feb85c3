"""Compiled contract artifacts: the ABI and bytecode a client needs, nothing else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent
BUILD_DIR = CONTRACTS_DIR / "build"


class ArtifactError(Exception):
    """An artifact is missing, unreadable, or does not match its source."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract, as written to ``contracts/build/<name>.json``."""

    contract_name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    evm_version: str
    optimizer_runs: int
    source_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "contractName": self.contract_name,
            "abi": list(self.abi),
            "bytecode": "0x" + self.bytecode.hex(),
            "deployedBytecode": "0x" + self.deployed_bytecode.hex(),
            "compiler": {
                "version": self.compiler_version,
                "evmVersion": self.evm_version,
                "optimizer": {"enabled": True, "runs": self.optimizer_runs},
            },
            "sourceSha256": self.source_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        try:
            return cls(
                contract_name=data["contractName"],
                abi=tuple(data["abi"]),
                bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
                deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
                compiler_version=data["compiler"]["version"],
                evm_version=data["compiler"]["evmVersion"],
                optimizer_runs=int(data["compiler"]["optimizer"]["runs"]),
                source_sha256=data["sourceSha256"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed artifact: {exc!r}") from exc


def source_path(name: str) -> Path:
    return CONTRACTS_DIR / f"{name}.sol"


def artifact_path(name: str) -> Path:
    return BUILD_DIR / f"{name}.json"


def source_sha256(name: str) -> str:
    return hashlib.sha256(source_path(name).read_bytes()).hexdigest()


def load_artifact(name: str = "KeyRegistry") -> Artifact:
    """Read ``contracts/build/<name>.json``.

    Raises:
        ArtifactError: the file is missing or malformed.
    """
    path = artifact_path(name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"no artifact at {path}; run `qkdchain compile`") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not JSON: {exc}") from exc
    return Artifact.from_json(data)
