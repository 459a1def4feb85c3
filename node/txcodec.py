"""Strict decoding of raw Ethereum transactions and sender recovery with coincurve.

Accepts legacy (EIP-155 replay-protected), EIP-2930 (type 1) and EIP-1559 (type 2)
transactions. Typed transactions may carry an access list: well-formed (20-byte
addresses, 32-byte storage keys) and bounded (:data:`MAX_ACCESS_LIST_ADDRESSES`
entries, :data:`MAX_ACCESS_LIST_KEYS` keys in all). Every defect is a named
:class:`TransactionRejected` subclass; nothing else escapes.
"""

from __future__ import annotations

from typing import Any

from coincurve import PrivateKey, PublicKey

from node import rlpcodec
from node.engine.base import AccessListEntry, Transaction
from node.errors import NodeError
from node.hashing import address_of_public, keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_TX_BYTES = 128 * 1024
# Both fit in MAX_TX_BYTES (23 and 33 bytes each) and cost at most 4.9 and 3.9 Mgas:
# far beyond any real access list, small enough that warming them stays cheap.
MAX_ACCESS_LIST_ADDRESSES = 2_048
MAX_ACCESS_LIST_KEYS = 2_048


class TransactionRejected(NodeError, ValueError):
    """A raw transaction was refused before execution.

    ``rpc_code`` is the JSON-RPC error code the node answers with (geth's -32000 for
    transaction-pool refusals unless a subclass says otherwise); ``rpc_data`` is what the
    error's ``data`` carries besides the error's name.
    """

    rpc_code = -32000

    @property
    def rpc_data(self) -> dict[str, int]:
        return {}


class MalformedTransaction(TransactionRejected):
    """Not a well-formed legacy, EIP-2930 or EIP-1559 transaction."""

    rpc_code = -32602


class MalformedAccessList(MalformedTransaction):
    """The access list is not a list of ``[20-byte address, [32-byte key, ...]]`` pairs."""


class AccessListTooLarge(TransactionRejected):
    """More than :data:`MAX_ACCESS_LIST_ADDRESSES` entries or :data:`MAX_ACCESS_LIST_KEYS` keys."""

    rpc_code = -32602

    def __init__(self, what: str, count: int, limit: int) -> None:
        super().__init__(f"access list has {count} {what}, at most {limit} are accepted")
        self.what, self.count, self.limit = what, count, limit


class UnsupportedTransactionType(TransactionRejected):
    rpc_code = -32602

    def __init__(self, tx_type: int) -> None:
        super().__init__(f"transaction type {tx_type} is not supported (legacy, EIP-2930 and EIP-1559 are)")
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


def _access_list(value: Any) -> tuple[AccessListEntry, ...]:
    if not isinstance(value, list):
        raise MalformedAccessList("the access list must be an RLP list")
    if len(value) > MAX_ACCESS_LIST_ADDRESSES:
        raise AccessListTooLarge("addresses", len(value), MAX_ACCESS_LIST_ADDRESSES)
    entries = []
    for entry in value:
        if not isinstance(entry, list) or len(entry) != 2:
            raise MalformedAccessList("an access-list entry must be [address, [storage keys]]")
        address, keys = entry
        if not isinstance(address, bytes) or len(address) != 20:
            raise MalformedAccessList("an access-list address must be 20 bytes")
        if not isinstance(keys, list) or not all(isinstance(k, bytes) and len(k) == 32 for k in keys):
            raise MalformedAccessList("access-list storage keys must be a list of 32-byte strings")
        entries.append(AccessListEntry("0x" + address.hex(), tuple(int.from_bytes(k, "big") for k in keys)))
    total = sum(len(e.storage_keys) for e in entries)
    if total > MAX_ACCESS_LIST_KEYS:
        raise AccessListTooLarge("storage keys", total, MAX_ACCESS_LIST_KEYS)
    return tuple(entries)


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
        OversizedTransaction, UnsupportedTransactionType, MalformedTransaction
        (MalformedAccessList among them), AccessListTooLarge, WrongChainId,
        InvalidTransactionSignature.
    """
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise MalformedTransaction("empty transaction")
    raw = bytes(raw)
    if len(raw) > MAX_TX_BYTES:
        raise OversizedTransaction(len(raw))
    tx_hash = keccak(raw)
    if raw[0] >= 0xC0:
        return _legacy(raw, chain_id, tx_hash)
    if raw[0] in (1, 2):
        return _typed(raw, chain_id, tx_hash)
    raise UnsupportedTransactionType(raw[0])


def _rlp_list(data: bytes, length: int) -> list[Any]:
    try:
        items = rlpcodec.decode(data)
    except rlpcodec.RlpError as exc:
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
    sighash = keccak(rlpcodec.encode(unsigned))
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


def _typed(raw: bytes, chain_id: int, tx_hash: bytes) -> Transaction:
    """Type 1 (EIP-2930: one ``gasPrice``) or type 2 (EIP-1559: a tip and a fee cap)."""
    fees = raw[0]  # the number of fee fields: type 1 has gasPrice, type 2 a tip and a fee cap
    items = _rlp_list(raw[1:], 10 + fees)
    given_chain = _int(items[0], "chainId")
    if given_chain != chain_id:
        raise WrongChainId(chain_id, given_chain)
    if fees == 1:  # as a legacy transaction: the whole gas price goes to the block, base fee first
        tip_int = max_fee_int = _int(items[2], "gasPrice")
    else:
        tip_int, max_fee_int = _int(items[2], "maxPriorityFeePerGas"), _int(items[3], "maxFeePerGas")
        if tip_int > max_fee_int:
            raise MalformedTransaction("maxPriorityFeePerGas exceeds maxFeePerGas")
    gas, to, value, data, access_list, y_parity, r, s = items[2 + fees :]
    access = _access_list(access_list)
    unsigned = _first_items(raw, 7 + fees)  # the signed fields, exactly as they were encoded
    sighash = keccak(raw[:1] + _list_header(len(unsigned)) + unsigned)
    sender = _recover(sighash, _int(y_parity, "yParity"), _int(r, "r"), _int(s, "s"))
    return Transaction(
        sender=sender,
        nonce=_int(items[1], "nonce"),
        to=_address(to),
        data=_bytes(data, "data"),
        gas=_int(gas, "gas"),
        value=_int(value, "value"),
        max_fee_per_gas=max_fee_int,
        max_priority_fee_per_gas=tip_int,
        tx_hash=tx_hash,
        access_list=access,
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
    access_list: tuple[AccessListEntry, ...] = (),
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
        [[bytes.fromhex(e.address[2:]), [k.to_bytes(32, "big") for k in e.storage_keys]] for e in access_list],
    ]
    signature = PrivateKey(key).sign_recoverable(keccak(b"\x02" + rlpcodec.encode(fields)), hasher=None)
    r, s, y = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    encoded: bytes = rlpcodec.encode([*fields, y, r, s])
    return b"\x02" + encoded
