"""Typed Python client of ``contracts/KeyRegistry.sol``.

Methods mirror the contract one to one. Writes are signed locally and sent as raw
transactions; a revert surfaces as the exception class named after the Solidity
custom error (see :mod:`node.errors`), decoded from revert data, before anything
is sent when gas estimation already reverts. The client takes any ``Web3``, so the
same code drives eth-tester, our node over JSON-RPC, anvil or Besu.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint, TxReceipt

from contracts import Artifact, load_artifact
from node.client.revert import RevertDecoder, revert_data_from
from node.client.signer import Signer
from node.errors import ContractRevert, NodeError, TransactionError
from node.types import (
    Address,
    Commitment,
    Confirmation,
    Event,
    IdentityRecord,
    KeyHash,
    PseudonymId,
    Role,
    SessionId,
    SessionInfo,
    SessionState,
    TxResult,
)

GAS_MARGIN = 1.25  # estimate_gas is exact for the state it ran on; leave room for change


class InvalidArgument(NodeError, ValueError):
    """A client argument is malformed (caught before anything reaches the chain)."""


class NoSigner(NodeError):
    """A write was attempted on a client with no signing account (see ``connect``)."""


def _bytes32(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise InvalidArgument(f"{name} must be 32 bytes, got {value!r:.80}")
    return bytes(value)


def _uint(name: str, value: int, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise InvalidArgument(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")
    return value


def _address(name: str, value: str) -> str:
    if not isinstance(value, str) or not Web3.is_address(value):
        raise InvalidArgument(f"{name} must be a 20-byte address, got {value!r}")
    return Web3.to_checksum_address(value)


class KeyRegistry:
    """One deployed KeyRegistry, optionally bound to a signing account.

    Args:
        w3: a connected Web3 (any provider).
        address: the contract address.
        signer: the account that writes; ``None`` for a read-only client.
        artifact: ABI and bytecode (defaults to the committed build).
        deployed_at_block: where event scans start (0 when unknown).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        signer: Signer | LocalAccount | None = None,
        artifact: Artifact | None = None,
        deployed_at_block: int = 0,
    ) -> None:
        self.w3 = w3
        self.artifact = artifact or load_artifact()
        checksummed = Web3.to_checksum_address(address)
        self.address = Address(checksummed)
        self._contract: Contract = w3.eth.contract(address=checksummed, abi=list(self.artifact.abi))
        self._decoder = RevertDecoder(self.artifact.abi)
        self._events_by_topic = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"): e["name"]
            for e in self.artifact.abi
            if e["type"] == "event"
        }
        self.signer = self._as_signer(signer) if signer is not None else None
        self.deployed_at_block = deployed_at_block
        self.deployment: TxResult | None = None

    def _as_signer(self, who: Signer | LocalAccount) -> Signer:
        return who if isinstance(who, Signer) else Signer(self.w3, who)

    # ---- construction -----------------------------------------------------

    @classmethod
    def deploy(cls, w3: Web3, deployer: Signer | LocalAccount, artifact: Artifact | None = None) -> KeyRegistry:
        """Deploy a fresh registry; ``deployer`` becomes its admin (the TA).

        Raises:
            TransactionError: the deployment failed.
        """
        artifact = artifact or load_artifact()
        signer = deployer if isinstance(deployer, Signer) else Signer(w3, deployer)
        data = "0x" + artifact.bytecode.hex()
        gas = w3.eth.estimate_gas({"from": signer.address, "data": data})  # type: ignore[typeddict-item]
        start = time.perf_counter()
        receipt = signer.send({"data": data, "gas": int(gas * GAS_MARGIN)})
        latency_ms = (time.perf_counter() - start) * 1e3
        if receipt["status"] != 1 or receipt["contractAddress"] is None:
            raise TransactionError("KeyRegistry deployment failed")
        registry = cls(w3, receipt["contractAddress"], signer, artifact, int(receipt["blockNumber"]))
        registry.deployment = registry._result(receipt, latency_ms)
        return registry

    def connect(self, who: Signer | LocalAccount, w3: Web3 | None = None) -> KeyRegistry:
        """The same contract with ``who`` as the writing account (through ``w3``: another node of the chain)."""
        target = w3 or self.w3
        signer = who if isinstance(who, Signer) else Signer(target, who)
        return KeyRegistry(target, self.address, signer, self.artifact, self.deployed_at_block)

    # ---- roles --------------------------------------------------------------

    def transfer_admin(self, new_admin: str) -> TxResult:
        return self._transact("transferAdmin", _address("new_admin", new_admin))

    def add_validator(self, account: str) -> TxResult:
        return self._transact("addValidator", _address("account", account))

    def add_vehicle(self, account: str) -> TxResult:
        return self._transact("addVehicle", _address("account", account))

    def remove_member(self, account: str) -> TxResult:
        return self._transact("removeMember", _address("account", account))

    def admin(self) -> Address:
        return Address(self._call("admin"))

    def role_of(self, account: str) -> Role:
        return Role(self._call("roleOf", _address("account", account)))

    def can_write(self, account: str) -> bool:
        return bool(self._call("canWrite", _address("account", account)))

    def is_account_revoked(self, account: str) -> bool:
        return bool(self._call("isAccountRevoked", _address("account", account)))

    # ---- identities -----------------------------------------------------------

    def register_identity(self, pseudonym_id: PseudonymId, account: str) -> TxResult:
        return self._transact("registerIdentity", _bytes32("pseudonym_id", pseudonym_id), _address("account", account))

    def revoke_identity(self, pseudonym_id: PseudonymId, reason: str) -> TxResult:
        if not isinstance(reason, str):
            raise InvalidArgument(f"reason must be a string, got {reason!r}")
        return self._transact("revokeIdentity", _bytes32("pseudonym_id", pseudonym_id), reason)

    def is_revoked(self, pseudonym_id: PseudonymId) -> bool:
        return bool(self._call("isRevoked", _bytes32("pseudonym_id", pseudonym_id)))

    def get_identity(self, pseudonym_id: PseudonymId) -> IdentityRecord:
        account, registered_at, revoked_at = self._call("getIdentity", _bytes32("pseudonym_id", pseudonym_id))
        return IdentityRecord(Address(Web3.to_checksum_address(account)), registered_at, revoked_at)

    # ---- key sessions -----------------------------------------------------------

    def commit_key(self, session_id: SessionId, peer: str, key_hash: KeyHash, key_bits: int, ttl: int) -> TxResult:
        return self._transact(
            "commitKey", *self._commitment_args(Commitment(session_id, Address(peer), key_hash, key_bits, ttl))
        )

    def commit_keys(self, commitments: Sequence[Commitment]) -> TxResult:
        return self._transact("commitKeys", [self._commitment_args(c) for c in commitments])

    def confirm_key(self, session_id: SessionId, key_hash: KeyHash) -> TxResult:
        return self._transact("confirmKey", _bytes32("session_id", session_id), _bytes32("key_hash", key_hash))

    def confirm_keys(self, confirmations: Sequence[Confirmation]) -> TxResult:
        args = [(_bytes32("session_id", c.session_id), _bytes32("key_hash", c.key_hash)) for c in confirmations]
        return self._transact("confirmKeys", args)

    def record_message(self, session_id: SessionId, ciphertext_hash: bytes, offset: int, bits: int) -> TxResult:
        return self._transact(
            "recordMessage",
            _bytes32("session_id", session_id),
            _bytes32("ciphertext_hash", ciphertext_hash),
            _uint("offset", offset, 32),
            _uint("bits", bits, 32),
        )

    def get_session(self, session_id: SessionId) -> SessionInfo:
        initiator, key_bits, expires_at, peer, state, consumed, key_hash = self._call(
            "getSession", _bytes32("session_id", session_id)
        )
        return SessionInfo(
            Address(Web3.to_checksum_address(initiator)),
            key_bits,
            expires_at,
            Address(Web3.to_checksum_address(peer)),
            SessionState(state),
            consumed,
            KeyHash(bytes(key_hash)),
        )

    def session_state(self, session_id: SessionId) -> SessionState:
        return SessionState(self._call("sessionState", _bytes32("session_id", session_id)))

    def consumed_bits(self, session_id: SessionId) -> int:
        return int(self._call("consumedBits", _bytes32("session_id", session_id)))

    def max_ttl(self) -> int:
        return int(self._call("MAX_TTL"))

    # ---- events ------------------------------------------------------------

    def events(
        self, name: str | None = None, from_block: int | None = None, to_block: int | str = "latest"
    ) -> list[Event]:
        """Registry events in ``[from_block, to_block]`` (default: since deployment),
        optionally only those named ``name``."""
        start = self.deployed_at_block if from_block is None else from_block
        logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": start, "toBlock": to_block})  # type: ignore[typeddict-item]
        decoded = [self._decode_log(log) for log in logs]
        return [e for e in decoded if e is not None and (name is None or e.name == name)]

    def _decode_log(self, log: Any) -> Event | None:
        topics = log["topics"]
        if not topics or bytes(topics[0]) not in self._events_by_topic:
            return None
        name = self._events_by_topic[bytes(topics[0])]
        data = self._contract.events[name]().process_log(log)
        return Event(
            name=name,
            args=dict(data["args"]),
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
        )

    # ---- plumbing -----------------------------------------------------------

    @staticmethod
    def _commitment_args(c: Commitment) -> tuple[bytes, str, bytes, int, int]:
        return (
            _bytes32("session_id", c.session_id),
            _address("peer", c.peer),
            _bytes32("key_hash", c.key_hash),
            _uint("key_bits", c.key_bits, 32),
            _uint("ttl", c.ttl, 64),
        )

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return self._contract.functions[fn](*args).call()
        except ContractLogicError as exc:
            raise self._decoder.decode(revert_data_from(exc.data)) from None

    def encode(self, fn: str, *args: Any) -> str:
        """ABI-encoded calldata of ``fn(*args)`` (for pre-signing load)."""
        return str(self._contract.encode_abi(fn, args=list(args)))

    def _transact(self, fn: str, *args: Any, gas: int | None = None) -> TxResult:
        if self.signer is None:
            raise NoSigner(f"{fn} needs a signing account: use registry.connect(account)")
        signer = self.signer
        tx: dict[str, Any] = {"to": self.address, "data": self.encode(fn, *args)}
        if gas is None:
            try:
                estimate = self.w3.eth.estimate_gas({"from": signer.address, **tx})  # type: ignore[typeddict-item]
            except ContractLogicError as exc:
                raise self._decoder.decode(revert_data_from(exc.data)) from None
            gas = int(estimate * GAS_MARGIN)
        raw = signer.sign({**tx, "gas": gas})
        start = time.perf_counter()
        receipt = signer.wait(signer.send_raw(raw))
        latency_ms = (time.perf_counter() - start) * 1e3
        if receipt["status"] != 1:
            raise self._explain_failure(signer.address, tx, receipt)
        return self._result(receipt, latency_ms)

    def transact_unchecked(self, fn: str, *args: Any, gas: int) -> TxResult:
        """Send ``fn(*args)`` with a fixed gas limit, skipping the pre-flight estimate.

        The transaction is mined even if it reverts; the revert is then raised
        with ``tx_hash`` set. Used to show that a mined, failed transaction leaves
        no trace in state.
        """
        return self._transact(fn, *args, gas=gas)

    def _explain_failure(self, sender: str, tx: dict[str, Any], receipt: TxReceipt) -> ContractRevert:
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        if receipt.get("revertReason") is not None:  # type: ignore[misc]  # Besu includes it
            return self._decoder.decode(bytes(HexBytes(receipt["revertReason"])), tx_hash)  # type: ignore[typeddict-item]
        # Ethereum receipts carry no revert data. A node with debug tracing (ours, anvil, geth)
        # gives the exact output of the mined transaction; otherwise replay the call on the
        # parent state, which is exact when the failed transaction was alone in its block.
        with contextlib.suppress(Exception):
            traced: Any = self.w3.provider.make_request(
                RPCEndpoint("debug_traceTransaction"), [tx_hash, {"tracer": "callTracer"}]
            )
            output = traced.get("result", {}).get("output") if isinstance(traced, dict) else None
            if output:
                return self._decoder.decode(bytes(HexBytes(output)), tx_hash)
        try:
            self.w3.eth.call({"from": sender, **tx}, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[typeddict-item]
        except ContractLogicError as exc:
            return self._decoder.decode(revert_data_from(exc.data), tx_hash)
        return self._decoder.decode(b"", tx_hash)

    def _result(self, receipt: TxReceipt, latency_ms: float) -> TxResult:
        events = tuple(e for e in (self._decode_log(log) for log in receipt["logs"]) if e is not None)
        return TxResult(
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            latency_ms=latency_ms,
            events=events,
        )
