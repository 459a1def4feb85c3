"""Admission: what a decoded transaction must satisfy before it enters the mempool.

Every refusal is a named :class:`~node.txcodec.TransactionRejected` subclass with its
JSON-RPC code; a refused transaction leaves no trace in the node's state.

Permissioning follows Hyperledger Besu's on-chain account permissioning: the allow
list is contract state. Here the contract is the KeyRegistry itself: the first
contract the genesis admin deploys (its address is known from genesis). A sender may
write if it is a genesis operator, the registry's admin, or ``canWrite`` on the
registry (a member that is not revoked). Creating a contract is narrower, as Besu's
account permissioning can restrict it: only the admin and the genesis ``deployers``
may send a transaction without a recipient. Answers are cached and the cache is dropped
whenever the registry emits a membership or revocation event, so a revocation bites
from the very next transaction, in the same block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import rlp
from eth_utils.crypto import keccak

from node.engine.base import LogEntry, Transaction
from node.engine.revm import RevmEngine
from node.txcodec import TransactionRejected

GWEI = 10**9
TX_GAS = 21_000
CREATE_GAS = 32_000
MAX_INITCODE = 49_152  # EIP-3860
ACCESS_LIST_ADDRESS_GAS = 2_400  # EIP-2930
ACCESS_LIST_STORAGE_KEY_GAS = 1_900


class WrongNonce(TransactionRejected):
    """The nonce is not the sender's next one (geth's wording: "nonce too low/high")."""

    wording = "nonce mismatch"

    def __init__(self, sender: str, expected: int, given: int) -> None:
        super().__init__(f"{self.wording}: next nonce of {sender} is {expected}, transaction has {given}")
        self.sender, self.expected, self.given = sender, expected, given


class NonceTooLow(WrongNonce):
    wording = "nonce too low"


class NonceTooHigh(WrongNonce):
    wording = "nonce too high"


class GasLimitTooHigh(TransactionRejected):
    def __init__(self, gas: int, limit: int) -> None:
        super().__init__(f"exceeds block gas limit: transaction gas {gas} > block gas limit {limit}")
        self.gas, self.limit = gas, limit


class IntrinsicGasTooLow(TransactionRejected):
    def __init__(self, gas: int, intrinsic: int) -> None:
        super().__init__(f"intrinsic gas too low: have {gas}, want {intrinsic}")
        self.gas, self.intrinsic = gas, intrinsic


class FeeTooLow(TransactionRejected):
    def __init__(self, max_fee: int, base_fee: int) -> None:
        super().__init__(f"max fee per gas less than block base fee: maxFeePerGas {max_fee} < baseFee {base_fee}")
        self.max_fee, self.base_fee = max_fee, base_fee


class InsufficientFundsForTransfer(TransactionRejected):
    def __init__(self, sender: str, needed: int, balance: int) -> None:
        super().__init__(f"insufficient funds for gas * price + value: {sender} has {balance}, needs {needed}")
        self.sender, self.needed, self.balance = sender, needed, balance


class SenderNotPermitted(TransactionRejected):
    """The sender is not an operator, the registry admin, or a non-revoked member."""

    rpc_code = -32007  # Besu's code for a sender that account permissioning refuses

    def __init__(self, sender: str) -> None:
        super().__init__(f"sender account not authorized to send transactions: {sender}")
        self.sender = sender


class ContractCreationNotPermitted(TransactionRejected):
    """A permitted sender that is neither the admin nor a genesis deployer tried to create a contract."""

    rpc_code = -32007

    def __init__(self, sender: str) -> None:
        super().__init__(
            f"sender account not authorized to create contracts: {sender} (admin and genesis deployers only)"
        )
        self.sender = sender


class AlreadyKnown(TransactionRejected):
    def __init__(self, tx_hash: bytes) -> None:
        super().__init__(f"already known: 0x{tx_hash.hex()}")
        self.tx_hash = tx_hash


class MempoolFull(TransactionRejected):
    def __init__(self, size: int) -> None:
        super().__init__(f"txpool is full ({size} transactions); retry later")
        self.size = size


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution (calldata, creation, EIP-3860 initcode words, and the
    EIP-2930 access list: every address and every storage key as listed, duplicates included)."""
    zeros = tx.data.count(0)
    gas = TX_GAS + 4 * zeros + 16 * (len(tx.data) - zeros)
    if tx.to is None:
        gas += CREATE_GAS + 2 * ((len(tx.data) + 31) // 32)
    for entry in tx.access_list:
        gas += ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_STORAGE_KEY_GAS * len(entry.storage_keys)
    return gas


def contract_address(deployer: str, nonce: int) -> str:
    """The CREATE address of ``deployer``'s transaction with ``nonce``."""
    return "0x" + keccak(rlp.encode([bytes.fromhex(deployer[2:]), nonce]))[-20:].hex()


@dataclass(frozen=True)
class Genesis:
    """The chain's starting point; every node of one chain must use the same.

    Args:
        chain_id: EIP-155 chain id.
        alloc: pre-funded accounts (address -> wei).
        validators: addresses allowed to propose blocks.
        admin: the Trusted Authority; its first deployment is the permissioning registry.
        operators: accounts that may always send (faucets, validators' own accounts).
        deployers: accounts besides the admin that may create contracts on a permissioned chain.
        permissioned: ``False`` runs an open dev chain (anyone funded may send, as on anvil).
        timestamp: the genesis block's timestamp.
        base_fee: the fixed base fee per gas (burnt).
        block_gas_limit: the gas limit of every block.
    """

    chain_id: int = 1337
    alloc: dict[str, int] = field(default_factory=dict)
    validators: tuple[str, ...] = ()
    admin: str | None = None
    operators: tuple[str, ...] = ()
    deployers: tuple[str, ...] = ()
    permissioned: bool = True
    timestamp: int = 0
    base_fee: int = GWEI
    block_gas_limit: int = 30_000_000

    @property
    def registry(self) -> str | None:
        return contract_address(self.admin.lower(), 0) if self.admin else None

    def to_json(self) -> dict[str, object]:
        extra: dict[str, object] = {"deployers": [d.lower() for d in self.deployers]} if self.deployers else {}
        return extra | {
            "chainId": self.chain_id,
            "alloc": {a.lower(): hex(v) for a, v in self.alloc.items()},
            "validators": [v.lower() for v in self.validators],
            "admin": self.admin.lower() if self.admin else None,
            "operators": [o.lower() for o in self.operators],
            "permissioned": self.permissioned,
            "timestamp": self.timestamp,
            "baseFee": self.base_fee,
            "blockGasLimit": self.block_gas_limit,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Genesis:
        try:
            alloc = data.get("alloc", {})
            assert isinstance(alloc, dict)
            return cls(
                chain_id=int(data.get("chainId", 1337)),  # type: ignore[call-overload]
                alloc={str(a).lower(): int(str(v), 0) for a, v in alloc.items()},
                validators=tuple(str(v).lower() for v in data.get("validators", ())),  # type: ignore[attr-defined]
                admin=str(data["admin"]).lower() if data.get("admin") else None,
                operators=tuple(str(o).lower() for o in data.get("operators", ())),  # type: ignore[attr-defined]
                deployers=tuple(str(d).lower() for d in data.get("deployers", ())),  # type: ignore[attr-defined]
                permissioned=bool(data.get("permissioned", True)),
                timestamp=int(data.get("timestamp", 0)),  # type: ignore[call-overload]
                base_fee=int(data.get("baseFee", GWEI)),  # type: ignore[call-overload]
                block_gas_limit=int(data.get("blockGasLimit", 30_000_000)),  # type: ignore[call-overload]
            )
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid genesis: {exc}") from exc


_ROLE_EVENTS = {
    keccak(text=signature)
    for signature in (
        "AdminTransferred(address,address)",
        "MemberAdded(address,uint8)",
        "MemberRemoved(address,uint8)",
        "IdentityRevoked(bytes32,address,string)",
    )
}
_CAN_WRITE = keccak(text="canWrite(address)")[:4]
_ADMIN = keccak(text="admin()")[:4]


class Permissioning:
    """The on-chain allow list, read from the registry's state (see the module docstring)."""

    def __init__(self, genesis: Genesis) -> None:
        self.enabled = genesis.permissioned
        self.registry = genesis.registry
        admin = {genesis.admin.lower()} if genesis.admin else set()
        self.operators = {o.lower() for o in genesis.operators} | admin
        self.deployers = {d.lower() for d in genesis.deployers} | admin
        self._cache: dict[str, bool] = {}
        self.changed = False  # a role event was seen since the owner last reset this flag

    def cached(self, sender: str) -> bool | None:
        """The answer if it needs no state read, else ``None``."""
        if not self.enabled or sender in self.operators:
            return True
        return self._cache.get(sender)

    def may_deploy(self, tx: Transaction) -> bool:
        """Whether ``tx`` is no contract creation, or one by the admin or a genesis deployer."""
        return tx.to is not None or not self.enabled or tx.sender in self.deployers

    def allowed(self, engine: RevmEngine, sender: str) -> bool:
        answer = self.cached(sender)
        if answer is None:
            answer = self._cache[sender] = self._ask(engine, sender)
        return answer

    def _ask(self, engine: RevmEngine, sender: str) -> bool:
        if self.registry is None or not engine.code(self.registry):
            return False
        word = bytes(12) + bytes.fromhex(sender[2:])
        try:
            if engine.call(sender, self.registry, _ADMIN)[-20:] == word[-20:]:
                return True
            return engine.call(sender, self.registry, _CAN_WRITE + word)[-1:] == b"\x01"
        except RuntimeError:  # not a registry after all
            return False

    def reset(self) -> None:
        """Forget every cached answer (the state they were read from was taken back)."""
        self._cache.clear()

    def observe(self, logs: tuple[LogEntry, ...]) -> None:
        """Drop cached answers when the registry changes a role or revokes someone."""
        if any(log.address == self.registry and log.topics and log.topics[0] in _ROLE_EVENTS for log in logs):
            self._cache.clear()
            self.changed = True


def check_static(tx: Transaction, genesis: Genesis) -> None:
    """The checks that need no state: gas limit, intrinsic gas, fee cap, initcode size."""
    if tx.gas > genesis.block_gas_limit:
        raise GasLimitTooHigh(tx.gas, genesis.block_gas_limit)
    needed = intrinsic_gas(tx)
    if tx.gas < needed:
        raise IntrinsicGasTooLow(tx.gas, needed)
    if tx.max_fee_per_gas < genesis.base_fee:
        raise FeeTooLow(tx.max_fee_per_gas, genesis.base_fee)
    if tx.to is None and len(tx.data) > MAX_INITCODE:
        raise IntrinsicGasTooLow(tx.gas, needed)  # EIP-3860: oversize initcode never runs
