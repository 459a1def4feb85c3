"""The fast execution engine: revm (Rust) through pyrevm.

pyrevm executes calls for a caller address: it neither checks signatures nor bumps
the caller's nonce on a call, nor charges gas. This engine does the rest of what a
block does: nonce check and bump, up-front funds check, gas charged at the
effective gas price.

pyrevm 0.3.7 never finalizes its journal: after ``commit()`` every account and slot
stays *warm* (EIP-2929) and keeps its first ``original_value`` (EIP-2200), so gas
drifts from Ethereum's, and the journal grows for ever. So nothing is committed
through the journal here. Each transaction runs inside a checkpoint; its write set
is read from the journal, the checkpoint is reverted, and the writes are put into
revm's database directly. Every transaction therefore starts cold, exactly as on
Ethereum, memory stays flat, and each transaction yields its exact write set (the
node stores it and commits to it in the block header).

Access lists (EIP-2930) are declared to revm in its transaction environment, so revm
charges their intrinsic gas itself (2400 per address, 1900 per key) and its refund cap
(EIP-3529: a fifth of the gas spent) counts that gas, exactly as Ethereum does. But
revm loads a declared account or slot *outside* the journal, where no revert would
unload it and it would stay warm for every later transaction. So each listed account
and slot is first loaded here, inside the transaction's checkpoint (journaled, warm
from then on); revm then finds it loaded and adds nothing, and the revert makes it
cold again. The environment's list is cleared after the run, as revm would otherwise
carry it into the next call.
"""

from __future__ import annotations

import re

from pyrevm import EVM, AccountInfo, BlockEnv, CfgEnv, Env, TxEnv

from node.engine.base import (
    AccessListEntry,
    Account,
    EngineError,
    ExecutionEngine,
    ExecutionReceipt,
    InsufficientFunds,
    LogEntry,
    NonceMismatch,
    StateDiff,
    Transaction,
)
from node.hashing import keccak

_REVERT = re.compile(r"output: 0x([0-9a-fA-F]*)")
_CHANGED = (  # journal entries that change an account (revm touches every changed account)
    "AccountTouched { address: ",
    "NonceChange { address: ",
    "AccountCreated { address: ",
    "CodeChange { address: ",
    "BalanceChange { address: ",
    "BalanceTransfer { from: ",
)
_LOADED = "AccountLoaded { address: "
_SSTORE = "StorageChange { address: "  # had_value None marks a load, Some(v) a write
EMPTY_CODE_HASH = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
SPEC = "CANCUN"


class RevmEngine(ExecutionEngine):
    """EVM state in revm's in-memory database.

    Args:
        chain_id: the chain id seen by ``CHAINID``.
        base_fee: the base fee per gas (our permissioned chain keeps it fixed; it is burnt).
        block_gas_limit: the gas limit of a block.
        coinbase: receives the priority fees.
    """

    name = "revm"

    def __init__(
        self,
        chain_id: int,
        base_fee: int = 0,
        block_gas_limit: int = 30_000_000,
        coinbase: str = "0x" + "00" * 20,
    ) -> None:
        self.chain_id = chain_id
        self.base_fee = base_fee
        self.block_gas_limit = block_gas_limit
        self.coinbase = coinbase.lower()
        self._block = StateDiff()
        self._undo: StateDiff | None = None
        self._codes: dict[bytes, bytes] = {}
        self.evm = EVM(
            env=Env(cfg=CfgEnv(chain_id=chain_id), block=self._block_env(0, 0)),
            gas_limit=block_gas_limit,
            spec_id=SPEC,
        )

    def _block_env(self, number: int, timestamp: int) -> BlockEnv:
        return BlockEnv(
            number=number,
            timestamp=timestamp,
            basefee=self.base_fee,
            gas_limit=self.block_gas_limit,
            coinbase=self.coinbase,
        )

    def begin_block(self, number: int, timestamp: int, coinbase: str | None = None, undoable: bool = False) -> None:
        """Start a block; ``undoable`` keeps the values it overwrites, so :meth:`rollback_block`
        can take it back (a proposal executed before consensus has decided it)."""
        if coinbase is not None:
            self.coinbase = coinbase.lower()
        self.evm.set_block_env(self._block_env(number, timestamp))
        self._block = StateDiff()
        self._undo = StateDiff() if undoable else None

    def end_block(self) -> StateDiff:
        block, self._block = self._block, StateDiff()
        return block

    def rollback_block(self) -> None:
        """Restore the state from before the last undoable block (its writes are discarded).

        Raises:
            EngineError: the last block was not begun with ``undoable=True``.
        """
        if self._undo is None:
            raise EngineError("the last block cannot be rolled back (not begun as undoable)")
        undo, self._undo = self._undo, None
        self.load(undo)
        self._block = StateDiff()

    # -- state written straight into revm's database (never through the journal) --

    def load(self, diff: StateDiff) -> None:
        """Put ``diff`` into the database: genesis, funding, and restarts from the store."""
        for address, account in diff.accounts.items():
            code = diff.code.get(account.code_hash)  # None: revm keeps code by hash already
            info = AccountInfo(  # type: ignore[call-arg]  # the stub omits balance
                balance=account.balance, nonce=account.nonce, code_hash=account.code_hash, code=code
            )
            self.evm.insert_account_info(address, info)
        self._codes.update(diff.code)
        for (address, slot), value in diff.storage.items():
            # pyrevm loads the account into the journal after a storage insert; the
            # revert unloads it again so the next transaction finds it cold
            checkpoint = self.evm.snapshot()
            self.evm.insert_account_storage(address, slot, value)
            self.evm.revert(checkpoint)

    def fund(self, address: str, wei: int) -> None:
        was = self.account(address)
        self._write(StateDiff(accounts={address.lower(): Account(was.nonce, was.balance + wei, was.code_hash)}))

    def _write(self, diff: StateDiff) -> None:
        if self._undo is not None:  # keep what this block overwrites, first write only
            for address in diff.accounts.keys() - self._undo.accounts.keys():
                self._undo.accounts[address] = self.account(address)
            for key in diff.storage.keys() - self._undo.storage.keys():
                self._undo.storage[key] = self.storage(*key)
        self.load(diff)
        self._block.update(diff)

    # -- transactions --

    def execute(self, tx: Transaction) -> ExecutionReceipt:
        sender = tx.sender.lower()
        price = min(tx.max_fee_per_gas, self.base_fee + tx.max_priority_fee_per_gas)
        checkpoint = self.evm.snapshot()
        try:
            account = self.evm.basic(sender)
            if account.nonce != tx.nonce:
                raise NonceMismatch(sender, account.nonce, tx.nonce)
            if account.balance < tx.gas * price + tx.value:
                raise InsufficientFunds(sender, tx.gas * price + tx.value, account.balance)
            receipt = self._run(tx)
            diff = self._written() if receipt.status else StateDiff()
            sender_after = self.evm.basic(sender)
        finally:
            self.evm.revert(checkpoint)
        fee = receipt.gas_used * price
        diff.accounts[sender] = Account(tx.nonce + 1, sender_after.balance - fee, _code_hash(sender_after))
        tip = receipt.gas_used * (price - self.base_fee)
        if tip:
            miner = (
                diff.accounts.get(self.coinbase)
                or self._block.accounts.get(self.coinbase)
                or self.account(self.coinbase)
            )
            diff.accounts[self.coinbase] = Account(miner.nonce, miner.balance + tip, miner.code_hash)
        self._write(diff)
        return receipt

    def _run(self, tx: Transaction) -> ExecutionReceipt:
        """Execute ``tx`` in the current checkpoint (the caller reverts it)."""
        if not tx.access_list:
            return self._call(tx)
        for entry in tx.access_list:  # journaled loads: warm now, cold again after the revert
            self.evm.basic(entry.address)
            for key in entry.storage_keys:
                self.evm.storage(entry.address, key)
        self.evm.set_tx_env(TxEnv(access_list=[(e.address, list(e.storage_keys)) for e in tx.access_list]))
        try:
            return self._call(tx)
        finally:
            self.evm.set_tx_env(TxEnv())

    def _call(self, tx: Transaction) -> ExecutionReceipt:
        contract: str | None = None
        try:
            if tx.to is None:
                contract = self.evm.deploy(tx.sender, tx.data, value=tx.value, gas=tx.gas).lower()
                output = b""
            else:
                output = bytes(self.evm.message_call(tx.sender, tx.to, tx.data, value=tx.value, gas=tx.gas))
            status = 1
        except RuntimeError as exc:  # pyrevm raises on revert and halt; the result keeps the gas
            match = _REVERT.search(str(exc))
            output = bytes.fromhex(match.group(1)) if match else b""
            status, contract = 0, None
        result = self.evm.result
        gas_used = result.gas_used if result is not None else tx.gas
        logs = tuple(_log(entry) for entry in result.logs) if (result is not None and status) else ()
        return ExecutionReceipt(status, gas_used, logs, output, contract)

    def _written(self) -> StateDiff:
        """The current checkpoint's writes, read back at their final values."""
        journal = self.evm.journal_str
        journal = journal[journal.rfind("journal: [") :]
        addresses: set[str] = set()
        for entry in _CHANGED:  # str.split is ~20x faster than a regex over the journal
            for piece in journal.split(entry)[1:]:
                addresses.add(piece[:42])
                if entry[7:15] == "Transfer":  # "BalanceTransfer { from: " names a recipient too
                    addresses.add(piece[48:90])  # "0x…, to: 0x…"
        slots: set[tuple[str, int]] = set()
        for piece in journal.split(_SSTORE)[1:]:
            comma = piece.index(",", 49)  # "0x<40 hex>, key: <decimal>, had_value: …"
            if piece.startswith(", had_value: Some", comma):
                slots.add((piece[:42], int(piece[49:comma])))
        diff = StateDiff()
        for address in addresses:
            info = self.evm.basic(address)
            code_hash = _code_hash(info)
            if info.nonce == 0 and info.balance == 0 and code_hash == EMPTY_CODE_HASH:
                continue  # EIP-161: touched-but-empty accounts are not created
            diff.accounts[address] = Account(info.nonce, info.balance, code_hash)
            if code_hash != EMPTY_CODE_HASH and code_hash not in self._codes:
                diff.code[code_hash] = _original_code(bytes(self.evm.get_code(address) or b""), code_hash)
        for address, slot in slots:
            diff.storage[(address, slot)] = int(self.evm.storage(address, slot))
        return diff

    # -- reads (each inside a checkpoint, so nothing becomes warm) --

    def call(self, sender: str, to: str, data: bytes) -> bytes:
        checkpoint = self.evm.snapshot()
        try:
            return bytes(self.evm.message_call(sender, to, data, is_static=True))
        finally:
            self.evm.revert(checkpoint)

    def simulate(
        self,
        sender: str,
        to: str | None,
        data: bytes,
        value: int,
        gas: int,
        access_list: tuple[AccessListEntry, ...] = (),
    ) -> ExecutionReceipt:
        """Run a call or deployment and discard its effects (``eth_call``, ``eth_estimateGas``);
        ``access_list`` is warmed and charged as a transaction's would be."""
        checkpoint = self.evm.snapshot()
        try:
            tx = Transaction(sender=sender, nonce=0, to=to, data=data, gas=gas, value=value, access_list=access_list)
            return self._run(tx)
        finally:
            self.evm.revert(checkpoint)

    def accessed(
        self,
        sender: str,
        to: str | None,
        data: bytes,
        value: int,
        gas: int,
        access_list: tuple[AccessListEntry, ...] = (),
    ) -> tuple[ExecutionReceipt, dict[str, set[int]]]:
        """:meth:`simulate`, and every account and storage slot the run loaded or wrote
        (read from the journal before it is reverted), for ``eth_createAccessList``."""
        checkpoint = self.evm.snapshot()
        try:
            tx = Transaction(sender=sender, nonce=0, to=to, data=data, gas=gas, value=value, access_list=access_list)
            receipt = self._run(tx)
            journal = self.evm.journal_str
        finally:
            self.evm.revert(checkpoint)
        journal = journal[journal.rfind("journal: [") :]
        touched: dict[str, set[int]] = {}
        for piece in journal.split(_LOADED)[1:]:
            touched.setdefault(piece[:42], set())
        for piece in journal.split(_SSTORE)[1:]:
            comma = piece.index(",", 49)  # "0x<40 hex>, key: <decimal>, had_value: …"
            touched.setdefault(piece[:42], set()).add(int(piece[49:comma]))
        return receipt, touched

    def account(self, address: str) -> Account:
        checkpoint = self.evm.snapshot()
        try:
            info = self.evm.basic(address)
            return Account(int(info.nonce), int(info.balance), _code_hash(info))
        finally:
            self.evm.revert(checkpoint)

    def code(self, address: str) -> bytes:
        """The deployed code, byte for byte (revm itself hands back its padded, analysed copy)."""
        return self._codes.get(self.account(address).code_hash, b"")

    def nonce(self, address: str) -> int:
        return self.account(address).nonce

    def balance(self, address: str) -> int:
        return self.account(address).balance

    def storage(self, address: str, slot: int) -> int:
        checkpoint = self.evm.snapshot()
        try:
            return int(self.evm.storage(address, slot))
        finally:
            self.evm.revert(checkpoint)


def _original_code(padded: bytes, code_hash: bytes) -> bytes:
    """Strip revm's analysis padding (trailing STOPs) back to the code that hashes to ``code_hash``."""
    for end in range(len(padded), max(-1, len(padded) - 64), -1):
        if keccak(padded[:end]) == code_hash:
            return padded[:end]
    raise EngineError(f"code does not match its hash 0x{code_hash.hex()}")


def _code_hash(info: AccountInfo) -> bytes:
    return bytes(info.code_hash) if info.code_hash else EMPTY_CODE_HASH


def _log(entry: object) -> LogEntry:
    topics, data = entry.data  # type: ignore[attr-defined]
    return LogEntry(
        address=str(entry.address).lower(),  # type: ignore[attr-defined]
        topics=tuple(bytes(t) for t in topics),
        data=bytes(data),
    )
