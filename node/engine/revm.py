"""The fast execution engine: revm (Rust) through pyrevm.

pyrevm executes calls for a caller address: it neither checks signatures nor bumps
the caller's nonce on a call, nor charges gas. This engine does the rest of what a
block does: nonce check and bump, up-front funds check, gas charged at the
effective gas price, and the journal committed at block boundaries so that memory
stays flat over long runs.
"""

from __future__ import annotations

import re

from pyrevm import EVM, AccountInfo, BlockEnv, CfgEnv, Env

from node.engine.base import (
    ExecutionEngine,
    ExecutionReceipt,
    InsufficientFunds,
    LogEntry,
    NonceMismatch,
    Transaction,
)

_REVERT = re.compile(r"output: 0x([0-9a-fA-F]*)")
SPEC = "CANCUN"


class RevmEngine(ExecutionEngine):
    """EVM state in revm.

    Args:
        chain_id: the chain id seen by ``CHAINID``.
        base_fee: the base fee per gas (our permissioned chain keeps it fixed).
        block_gas_limit: the gas limit of a block.
    """

    name = "revm"

    def __init__(self, chain_id: int, base_fee: int = 0, block_gas_limit: int = 30_000_000) -> None:
        self.chain_id = chain_id
        self.base_fee = base_fee
        self.block_gas_limit = block_gas_limit
        self.evm = EVM(
            env=Env(cfg=CfgEnv(chain_id=chain_id), block=self._block_env(0, 0)),
            gas_limit=block_gas_limit,
            spec_id=SPEC,
        )

    def _block_env(self, number: int, timestamp: int) -> BlockEnv:
        return BlockEnv(number=number, timestamp=timestamp, basefee=self.base_fee, gas_limit=self.block_gas_limit)

    def begin_block(self, number: int, timestamp: int) -> None:
        self.evm.set_block_env(self._block_env(number, timestamp))

    def end_block(self) -> None:
        """Finalize the journal: the block's changes become the base state."""
        self.evm.commit()
        # pyrevm 0.3.7 leaves the journal depth at -1 (u64 wrap) after commit, and the
        # next call halts with CallTooDeep; a snapshot brings it back to 0.
        self.evm.snapshot()

    def fund(self, address: str, wei: int) -> None:
        self.evm.set_balance(address, self.balance(address) + wei)

    def execute(self, tx: Transaction) -> ExecutionReceipt:
        account = self.evm.basic(tx.sender)
        if account.nonce != tx.nonce:
            raise NonceMismatch(tx.sender, account.nonce, tx.nonce)
        price = min(tx.max_fee_per_gas, self.base_fee + tx.max_priority_fee_per_gas)
        balance = self.evm.get_balance(tx.sender)
        if balance < tx.gas * price + tx.value:
            raise InsufficientFunds(tx.sender, tx.gas * price + tx.value, balance)
        contract: str | None = None
        try:
            if tx.to is None:
                contract = self.evm.deploy(tx.sender, tx.data, value=tx.value, gas=tx.gas)
            else:
                output = self.evm.message_call(tx.sender, tx.to, tx.data, value=tx.value, gas=tx.gas)
            status = 1
        except RuntimeError as exc:  # pyrevm raises on revert and halt; the result keeps the gas
            match = _REVERT.search(str(exc))
            output = bytes.fromhex(match.group(1)) if match else b""
            status = 0
            contract = None
        result = self.evm.result
        gas_used = result.gas_used if result is not None else tx.gas
        logs = tuple(_log(entry) for entry in result.logs) if (result is not None and status) else ()
        if tx.to is None and status:
            output = b""
        # pyrevm bumps the nonce for CREATE itself, not for calls; reverted creates too need the bump.
        nonce = tx.nonce + 1
        balance_after = self.evm.get_balance(tx.sender) - gas_used * price
        info = self.evm.basic(tx.sender)
        self.evm.insert_account_info(tx.sender, AccountInfo(nonce=nonce, code_hash=info.code_hash, code=info.code))
        self.evm.set_balance(tx.sender, balance_after)
        return ExecutionReceipt(status, gas_used, logs, output, contract)

    def call(self, sender: str, to: str, data: bytes) -> bytes:
        checkpoint = self.evm.snapshot()
        try:
            return bytes(self.evm.message_call(sender, to, data, is_static=True))
        finally:
            self.evm.revert(checkpoint)

    def nonce(self, address: str) -> int:
        return int(self.evm.basic(address).nonce)

    def balance(self, address: str) -> int:
        return int(self.evm.get_balance(address))

    def storage(self, address: str, slot: int) -> int:
        return int(self.evm.storage(address, slot))


def _log(entry: object) -> LogEntry:
    topics, data = entry.data  # type: ignore[attr-defined]
    return LogEntry(
        address=str(entry.address).lower(),  # type: ignore[attr-defined]
        topics=tuple(bytes(t) for t in topics),
        data=bytes(data),
    )
