"""Strict decoding of raw Ethereum transactions and sender recovery with coincurve.

Accepts legacy (EIP-155 replay-protected) and EIP-1559 (type 2) transactions. Every
defect is a named :class:`TransactionRejected` subclass; nothing else escapes.
"""

from __future__ import annotations

from typing import Any

import rlp
from coincurve import PrivateKey, PublicKey
from rlp.exceptions import DecodingError, DeserializationError

from node.engine.base import Transaction
from node.errors import NodeError
from node.hashing import address_of_public, keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_TX_BYTES = 128 * 1024


class TransactionRejected(NodeError, ValueError):
    """A raw transaction was refused before execution.

    ``rpc_code`` is the JSON-RPC error code the node answers with (geth's -32000 for
    transaction-pool refusals unless a subclass says otherwise).
    """

    rpc_code = -32000


class MalformedTransaction(TransactionRejected):
    """Not a well-formed legacy or EIP-1559 transaction."""

    rpc_code = -32602


class UnsupportedTransactionType(TransactionRejected):
    rpc_code = -32602

    def __init__(self, tx_type: int) -> None:
        super().__init__(f"transaction type {tx_type} is not supported (legacy and EIP-1559 are)")
        self.tx_type = tx_type


class OversizedTransaction(TransactionRejected):
    def __init__(self, size: int) -> None:
        super().__init__(f"transaction of {size} bytes exceeds {MAX_TX_BYTES}")
        self.size = size


class InvalidTransactionSignature(TransactionRejected):
    """r, s or v out of range, high s (EIP-2), or no public key recovers."""


class WrongChainId(TransactionRejected):
    def __init__(self, expected: int, given: int | None) -> None:
        super().__init__(f"chain id {given} does not match {expected}")
        self.expected, self.given = expected, given


def _int(value: Any, what: str) -> int:
    if not isinstance(value, bytes) or (len(value) > 0 and value[0] == 0) or len(value) > 32:
        raise MalformedTransaction(f"{what} is not a canonical integer")
    return int.from_bytes(value, "big")


def _address(value: Any) -> str | None:
    if not isinstance(value, bytes) or len(value) not in (0, 20):
        raise MalformedTransaction("to must be empty or 20 bytes")
    return "0x" + value.hex() if value else None


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedTransaction(f"{what} must be a byte string")
    return value


def _recover(sighash: bytes, y_parity: int, r: int, s: int) -> str:
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2) or y_parity not in (0, 1):
        raise InvalidTransactionSignature("signature values out of range")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    try:
        public = PublicKey.from_signature_and_message(signature, sighash, hasher=None)
    except ValueError as exc:
        raise InvalidTransactionSignature("no public key recovers from this signature") from exc
    return address_of_public(public)


def decode_transaction(raw: bytes, chain_id: int) -> Transaction:
    """Decode ``raw``, check its chain id and signature, and recover the sender.

    Raises:
        OversizedTransaction, UnsupportedTransactionType, MalformedTransaction,
        WrongChainId, InvalidTransactionSignature.
    """
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise MalformedTransaction("empty transaction")
    raw = bytes(raw)
    if len(raw) > MAX_TX_BYTES:
        raise OversizedTransaction(len(raw))
    tx_hash = keccak(raw)
    if raw[0] >= 0xC0:
        return _legacy(raw, chain_id, tx_hash)
    if raw[0] == 2:
        return _eip1559(raw, chain_id, tx_hash)
    raise UnsupportedTransactionType(raw[0])


def _rlp_list(data: bytes, length: int) -> list[Any]:
    try:
        items = rlp.decode(data, strict=True)
    except (DecodingError, DeserializationError) as exc:
        raise MalformedTransaction(f"bad RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) != length:
        raise MalformedTransaction(f"expected an RLP list of {length} fields")
    return items


def _item_end(data: bytes, at: int) -> int:
    """Where the RLP item starting at ``at`` ends (``data`` is already known to be well formed)."""
    prefix = data[at]
    if prefix < 0x80:
        return at + 1
    if prefix < 0xB8:
        return at + 1 + prefix - 0x80
    if prefix < 0xC0:
        size = prefix - 0xB7
        return at + 1 + size + int.from_bytes(data[at + 1 : at + 1 + size], "big")
    if prefix < 0xF8:
        return at + 1 + prefix - 0xC0
    size = prefix - 0xF7
    return at + 1 + size + int.from_bytes(data[at + 1 : at + 1 + size], "big")


def _first_items(raw: bytes, count: int) -> bytes:
    """The encodings of the first ``count`` items of the typed transaction's list, concatenated."""
    prefix = raw[1]
    at = 2 if prefix < 0xF8 else 2 + prefix - 0xF7
    start = at
    for _ in range(count):
        at = _item_end(raw, at)
    return raw[start:at]


def _list_header(size: int) -> bytes:
    if size < 56:
        return bytes([0xC0 + size])
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0xF7 + len(length)]) + length


def _legacy(raw: bytes, chain_id: int, tx_hash: bytes) -> Transaction:
    nonce, gas_price, gas, to, value, data, v, r, s = _rlp_list(raw, 9)
    fields = (_int(nonce, "nonce"), _int(gas_price, "gasPrice"), _int(gas, "gas"))
    v_int = _int(v, "v")
    if v_int in (27, 28):
        raise WrongChainId(chain_id, None)  # pre-EIP-155: replayable on any chain
    tx_chain, y_parity = (v_int - 35) // 2, (v_int - 35) % 2
    if tx_chain != chain_id:
        raise WrongChainId(chain_id, tx_chain)
    unsigned = [nonce, gas_price, gas, to, value, data, chain_id, b"", b""]
    sighash = keccak(rlp.encode(unsigned))
    sender = _recover(sighash, y_parity, _int(r, "r"), _int(s, "s"))
    return Transaction(
        sender=sender,
        nonce=fields[0],
        to=_address(to),
        data=_bytes(data, "data"),
        gas=fields[2],
        value=_int(value, "value"),
        max_fee_per_gas=fields[1],
        max_priority_fee_per_gas=fields[1],
        tx_hash=tx_hash,
    )


def _eip1559(raw: bytes, chain_id: int, tx_hash: bytes) -> Transaction:
    items = _rlp_list(raw[1:], 12)
    tx_chain, nonce, tip, max_fee, gas, to, value, data, access_list, y_parity, r, s = items
    given_chain = _int(tx_chain, "chainId")
    if given_chain != chain_id:
        raise WrongChainId(chain_id, given_chain)
    if access_list != []:
        # the engine does not pre-warm access lists, so their gas would differ from Ethereum's
        raise MalformedTransaction("access lists are not supported; send an empty access list")
    tip_int, max_fee_int = _int(tip, "maxPriorityFeePerGas"), _int(max_fee, "maxFeePerGas")
    if tip_int > max_fee_int:
        raise MalformedTransaction("maxPriorityFeePerGas exceeds maxFeePerGas")
    unsigned = _first_items(raw, 9)  # the signed fields, exactly as they were encoded
    sighash = keccak(b"\x02" + _list_header(len(unsigned)) + unsigned)
    sender = _recover(sighash, _int(y_parity, "yParity"), _int(r, "r"), _int(s, "s"))
    return Transaction(
        sender=sender,
        nonce=_int(nonce, "nonce"),
        to=_address(to),
        data=_bytes(data, "data"),
        gas=_int(gas, "gas"),
        value=_int(value, "value"),
        max_fee_per_gas=max_fee_int,
        max_priority_fee_per_gas=tip_int,
        tx_hash=tx_hash,
    )


def sign_eip1559(
    key: bytes,
    chain_id: int,
    nonce: int,
    to: str | None,
    data: bytes,
    gas: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
    value: int = 0,
) -> bytes:
    """A signed raw EIP-1559 transaction (coincurve; fast enough to pre-sign benchmarks)."""
    fields: list[Any] = [
        chain_id,
        nonce,
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas,
        bytes.fromhex(to[2:]) if to else b"",
        value,
        data,
        [],
    ]
    signature = PrivateKey(key).sign_recoverable(keccak(b"\x02" + rlp.encode(fields)), hasher=None)
    r, s, y = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    encoded: bytes = rlp.encode([*fields, y, r, s])
    return b"\x02" + encoded
