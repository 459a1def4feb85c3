"""The execution-engine seam: a decoded transaction in, a receipt out.

Signatures are checked before an engine sees a transaction (admission recovers the
sender); an engine checks the nonce and the sender's funds, executes, charges gas
at the effective gas price and bumps the nonce, exactly as a block does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from node.errors import NodeError
from node.hashing import keccak


class EngineError(NodeError):
    """A transaction cannot be included at all (as opposed to a revert, which is a receipt)."""


class NonceMismatch(EngineError):
    def __init__(self, sender: str, expected: int, given: int) -> None:
        super().__init__(f"nonce of {sender} is {expected}, transaction has {given}")
        self.sender, self.expected, self.given = sender, expected, given


class InsufficientFunds(EngineError):
    def __init__(self, sender: str, needed: int, balance: int) -> None:
        super().__init__(f"{sender} needs {needed} wei for gas, has {balance}")
        self.sender, self.needed, self.balance = sender, needed, balance


@dataclass(frozen=True)
class AccessListEntry:
    """One EIP-2930 access-list item: an account and storage keys the transaction declares.

    Each is warm (EIP-2929) from the transaction's first instruction; intrinsic gas pays
    for every entry and every key as listed, duplicates included.
    """

    address: str  # lowercase 0x-hex, 20 bytes
    storage_keys: tuple[int, ...] = ()


@dataclass(frozen=True)
class Transaction:
    """A decoded, signature-checked transaction (``to`` is ``None`` for a deployment).

    ``access_list`` is empty for legacy transactions; type 1 (EIP-2930) and type 2
    (EIP-1559) may carry one.
    """

    sender: str
    nonce: int
    to: str | None
    data: bytes
    gas: int
    value: int = 0
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0
    tx_hash: bytes = b""
    access_list: tuple[AccessListEntry, ...] = ()


@dataclass(frozen=True)
class LogEntry:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Account:
    nonce: int
    balance: int
    code_hash: bytes


@dataclass
class StateDiff:
    """The state a block (or a transaction) wrote: final values, not deltas."""

    accounts: dict[str, Account] = field(default_factory=dict)
    storage: dict[tuple[str, int], int] = field(default_factory=dict)
    code: dict[bytes, bytes] = field(default_factory=dict)  # code hash -> code

    def update(self, other: StateDiff) -> None:
        self.accounts.update(other.accounts)
        self.storage.update(other.storage)
        self.code.update(other.code)

    def commitment(self) -> bytes:
        """keccak over the sorted writes: one 32-byte commitment to the changes."""
        parts = [
            b"A" + bytes.fromhex(a[2:]) + _word(x.nonce) + _word(x.balance) + x.code_hash
            for a, x in sorted(self.accounts.items())
        ]
        parts += [b"S" + bytes.fromhex(a[2:]) + _word(k) + _word(v) for (a, k), v in sorted(self.storage.items())]
        parts += [b"C" + h for h in sorted(self.code)]
        return keccak(b"".join(parts))


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass(frozen=True)
class ExecutionReceipt:
    status: int  # 1 success, 0 reverted or halted
    gas_used: int
    logs: tuple[LogEntry, ...]
    output: bytes  # return data, or revert data when status == 0
    contract_address: str | None = None


class ExecutionEngine(ABC):
    """One EVM state, advanced transaction by transaction, block by block."""

    name: str

    @abstractmethod
    def execute(self, tx: Transaction) -> ExecutionReceipt:
        """Apply ``tx`` to the state and return its receipt.

        Raises:
            NonceMismatch, InsufficientFunds: the transaction cannot be included;
                the state is untouched.
        """

    @abstractmethod
    def begin_block(self, number: int, timestamp: int) -> None:
        """Set the block environment (``NUMBER``, ``TIMESTAMP``) for what follows."""

    @abstractmethod
    def end_block(self) -> StateDiff:
        """Close the block and return everything it wrote."""

    @abstractmethod
    def call(self, sender: str, to: str, data: bytes) -> bytes:
        """A read-only call on the current state (no state change)."""

    @abstractmethod
    def nonce(self, address: str) -> int: ...

    @abstractmethod
    def balance(self, address: str) -> int: ...

    @abstractmethod
    def storage(self, address: str, slot: int) -> int: ...
