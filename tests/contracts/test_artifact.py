"""The committed artifact matches the source, and the Python error classes match the ABI."""

from __future__ import annotations

from contracts import load_artifact
from contracts.artifact import source_sha256
from contracts.compiler import EVM_VERSION, SOLC_VERSION, compile_contract
from node.errors import REGISTRY_ERRORS


def test_artifact_is_not_stale() -> None:
    artifact = load_artifact()
    assert artifact.source_sha256 == source_sha256("KeyRegistry"), (
        "contracts/KeyRegistry.sol changed since contracts/build/KeyRegistry.json was built: run `qkdchain compile`"
    )
    assert artifact.compiler_version.startswith(SOLC_VERSION + "+")
    assert artifact.evm_version == EVM_VERSION


def test_recompiling_reproduces_the_artifact() -> None:
    fresh = compile_contract("KeyRegistry")
    committed = load_artifact()
    assert fresh.abi == committed.abi
    assert fresh.bytecode == committed.bytecode
    assert fresh.deployed_bytecode == committed.deployed_bytecode


def test_every_custom_error_has_a_python_class_with_its_fields() -> None:
    abi_errors = {e["name"]: [i["name"] for i in e["inputs"]] for e in load_artifact().abi if e["type"] == "error"}
    assert set(abi_errors) == set(REGISTRY_ERRORS)
    for name, fields in abi_errors.items():
        assert list(REGISTRY_ERRORS[name].__annotations__) == fields, name


def test_every_state_change_has_an_event() -> None:
    abi = load_artifact().abi
    writes = {e["name"] for e in abi if e["type"] == "function" and e["stateMutability"] == "nonpayable"}
    events = {e["name"] for e in abi if e["type"] == "event"}
    assert writes == {
        "transferAdmin",
        "addValidator",
        "addVehicle",
        "removeMember",
        "registerIdentity",
        "revokeIdentity",
        "commitKey",
        "commitKeys",
        "confirmKey",
        "confirmKeys",
        "recordMessage",
    }
    assert events == {
        "AdminTransferred",
        "MemberAdded",
        "MemberRemoved",
        "IdentityRegistered",
        "IdentityRevoked",
        "KeyCommitted",
        "KeyConfirmed",
        "MessageRecorded",
    }
