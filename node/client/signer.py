"""A local signing account with its own nonce counter.

Every ledger write in qkdchain is a real signed EIP-1559 transaction sent with
``eth_sendRawTransaction``; no node ever holds a vehicle's key.
"""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from node.errors import ReceiptTimeout, TransactionError

PRIORITY_FEE_WEI = 10**9


class Signer:
    """Signs and sends transactions for one account, tracking its nonce locally.

    The nonce is read from the chain once and then counted here, so a burst of
    transactions needs no round trip per nonce; a send the node refuses resyncs it.
    """

    def __init__(self, w3: Web3, account: LocalAccount) -> None:
        self.w3 = w3
        self.account = account
        self.address: str = account.address
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._max_fee: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def max_fee(self) -> int:
        # Twice the current base fee plus the tip covers six full blocks of
        # base-fee growth; our chains are far from full, so this is read once.
        if self._max_fee is None:
            base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
            self._max_fee = 2 * base + PRIORITY_FEE_WEI
        return self._max_fee

    def sign(self, tx: dict[str, Any]) -> HexBytes:
        """Fill chain id, nonce and fees, sign, and return the raw transaction.

        ``tx`` must carry ``gas``. The nonce counter advances.
        """
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        full = {
            "chainId": self.chain_id,
            "nonce": self._nonce,
            "maxFeePerGas": self.max_fee(),
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            "value": 0,
            **tx,
        }
        raw = self.account.sign_transaction(full).raw_transaction
        self._nonce += 1
        return HexBytes(raw)

    def send_raw(self, raw: HexBytes) -> HexBytes:
        """Submit a signed transaction; on refusal the nonce is re-read from the chain.

        Raises:
            TransactionError: the node refused the transaction.
        """
        try:
            return self.w3.eth.send_raw_transaction(raw)
        except (Web3RPCError, ValueError) as exc:
            self._nonce = None
            raise TransactionError(f"node refused transaction from {self.address}: {exc}") from exc

    def wait(self, tx_hash: HexBytes, timeout_s: float = 60.0) -> TxReceipt:
        """Poll for the receipt of ``tx_hash``.

        Raises:
            ReceiptTimeout: none within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.0005
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise ReceiptTimeout(tx_hash.to_0x_hex(), timeout_s) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def send(self, tx: dict[str, Any]) -> TxReceipt:
        """Sign, send and wait for the receipt of ``tx`` (which must carry ``gas``)."""
        return self.wait(self.send_raw(self.sign(tx)))
