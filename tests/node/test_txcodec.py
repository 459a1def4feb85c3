"""Strict raw-transaction decoding and coincurve sender recovery."""

from __future__ import annotations

import contextlib

import pytest
import rlp
from coincurve import PrivateKey
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.base import AccessListEntry
from node.hashing import keccak
from node.txcodec import (
    MAX_ACCESS_LIST_ADDRESSES,
    MAX_ACCESS_LIST_KEYS,
    SECP256K1_N,
    AccessListTooLarge,
    InvalidTransactionSignature,
    MalformedAccessList,
    MalformedTransaction,
    OversizedTransaction,
    TransactionRejected,
    UnsupportedTransactionType,
    WrongChainId,
    decode_transaction,
)

ACCT = Account.from_key(b"\x07" * 32)
TO = "0x" + "22" * 20
EIP1559 = bytes(
    ACCT.sign_transaction(
        {
            "chainId": 1337,
            "nonce": 3,
            "maxFeePerGas": 10**9,
            "maxPriorityFeePerGas": 10**8,
            "gas": 50_000,
            "to": TO,
            "value": 5,
            "data": b"\x01\x02",
        }
    ).raw_transaction
)
LEGACY = bytes(
    ACCT.sign_transaction(
        {"chainId": 1337, "nonce": 4, "gasPrice": 10**9, "gas": 50_000, "to": TO, "value": 0, "data": b""}
    ).raw_transaction
)

ACCESS = [
    {"address": "0x" + "33" * 20, "storageKeys": ["0x" + "00" * 31 + "01", "0x" + "ff" * 32]},
    {"address": TO, "storageKeys": []},
    {"address": "0x" + "33" * 20, "storageKeys": ["0x" + "00" * 31 + "01"]},  # duplicates are allowed
]
DECODED_ACCESS = (
    AccessListEntry("0x" + "33" * 20, (1, 2**256 - 1)),
    AccessListEntry(TO, ()),
    AccessListEntry("0x" + "33" * 20, (1,)),
)
EIP2930 = bytes(
    ACCT.sign_transaction(
        {
            "type": 1,
            "chainId": 1337,
            "nonce": 5,
            "gasPrice": 7 * 10**8,
            "gas": 60_000,
            "to": TO,
            "value": 9,
            "data": b"\x03",
            "accessList": ACCESS,
        }
    ).raw_transaction
)


@pytest.mark.parametrize("raw", [EIP1559, LEGACY, EIP2930], ids=["eip1559", "legacy", "eip2930"])
def test_decodes_and_recovers(raw: bytes) -> None:
    tx = decode_transaction(raw, 1337)
    assert tx.sender == ACCT.address.lower()
    assert tx.to == TO and tx.gas == (60_000 if raw[0] == 1 else 50_000)


def test_type_1_fields_and_legacy_gas_price() -> None:
    tx = decode_transaction(EIP2930, 1337)
    assert (tx.nonce, tx.value, tx.data, tx.access_list) == (5, 9, b"\x03", DECODED_ACCESS)
    assert tx.max_fee_per_gas == tx.max_priority_fee_per_gas == 7 * 10**8


def test_type_2_carries_its_access_list() -> None:
    fields = {"chainId": 1337, "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "gas": 90_000, "to": TO}
    raw = bytes(ACCT.sign_transaction(fields | {"accessList": ACCESS}).raw_transaction)
    tx = decode_transaction(raw, 1337)
    assert tx.sender == ACCT.address.lower() and tx.access_list == DECODED_ACCESS
    assert (tx.max_fee_per_gas, tx.max_priority_fee_per_gas) == (2, 1)
    assert decode_transaction(EIP1559, 1337).access_list == ()


def _typed(tx_type: int, access_list: object) -> bytes:
    """A typed transaction signed by ACCT over whatever ``access_list`` is."""
    fees: list[object] = [1] if tx_type == 1 else [1, 1]
    unsigned = [1337, 0, *fees, 21_000, b"", 0, b"", access_list]
    signature = PrivateKey(b"\x07" * 32).sign_recoverable(keccak(bytes([tx_type]) + rlp.encode(unsigned)), hasher=None)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    return bytes([tx_type]) + bytes(rlp.encode([*unsigned, signature[64], r, s]))


ADDRESS, KEY = b"\x33" * 20, b"\x01" * 32


@pytest.mark.parametrize("tx_type", [1, 2])
@pytest.mark.parametrize(
    "access_list",
    [
        b"\x01",  # not a list
        [ADDRESS],  # an entry that is not [address, keys]
        [[ADDRESS, [KEY], b""]],
        [[b"\x33" * 19, []]],  # short address
        [[b"\x33" * 21, []]],
        [[[ADDRESS], []]],
        [[ADDRESS, KEY]],  # keys not a list
        [[ADDRESS, [KEY[:31]]]],  # short key
        [[ADDRESS, [b"\x00" + KEY]]],
        [[ADDRESS, [[KEY]]]],
    ],
)
def test_malformed_access_lists_are_refused(tx_type: int, access_list: object) -> None:
    with pytest.raises(MalformedAccessList):
        decode_transaction(_typed(tx_type, access_list), 1337)


def test_access_lists_are_bounded() -> None:
    at_limit = [[ADDRESS, []]] * MAX_ACCESS_LIST_ADDRESSES
    tx = decode_transaction(_typed(1, at_limit), 1337)
    assert tx.sender == ACCT.address.lower() and len(tx.access_list) == MAX_ACCESS_LIST_ADDRESSES
    with pytest.raises(AccessListTooLarge) as too_many:
        decode_transaction(_typed(1, [*at_limit, [ADDRESS, []]]), 1337)
    assert (too_many.value.what, too_many.value.count) == ("addresses", MAX_ACCESS_LIST_ADDRESSES + 1)
    keys = [[ADDRESS, [KEY] * (MAX_ACCESS_LIST_KEYS // 2)], [ADDRESS, [KEY] * (MAX_ACCESS_LIST_KEYS // 2)]]
    assert (
        sum(len(e.storage_keys) for e in decode_transaction(_typed(2, keys), 1337).access_list) == MAX_ACCESS_LIST_KEYS
    )
    with pytest.raises(AccessListTooLarge) as too_many:
        decode_transaction(_typed(2, [*keys, [ADDRESS, [KEY]]]), 1337)
    assert (too_many.value.what, too_many.value.count) == ("storage keys", MAX_ACCESS_LIST_KEYS + 1)


def test_deployment_has_no_recipient() -> None:
    raw = bytes(
        ACCT.sign_transaction(
            {"chainId": 1337, "nonce": 0, "maxFeePerGas": 1, "maxPriorityFeePerGas": 1, "gas": 90_000, "data": b"\x60"}
        ).raw_transaction
    )
    assert decode_transaction(raw, 1337).to is None


def test_refusals_are_named() -> None:
    with pytest.raises(WrongChainId):
        decode_transaction(EIP1559, 1)
    with pytest.raises(WrongChainId):
        decode_transaction(LEGACY, 1)
    with pytest.raises(UnsupportedTransactionType):
        decode_transaction(b"\x03" + EIP1559[1:], 1337)
    with pytest.raises(OversizedTransaction):
        decode_transaction(b"\x02" + b"\x00" * 200_000, 1337)
    with pytest.raises(MalformedTransaction):
        decode_transaction(b"", 1337)
    with pytest.raises(MalformedTransaction):
        decode_transaction(EIP1559[:-3], 1337)
    fields = rlp.decode(EIP1559[1:])
    fields[11] = (SECP256K1_N - 1).to_bytes(32, "big")  # high s
    with pytest.raises(InvalidTransactionSignature):
        decode_transaction(b"\x02" + rlp.encode(fields), 1337)
    fields = rlp.decode(EIP1559[1:])
    fields[4] = b"\x00\x01"  # non-canonical integer
    with pytest.raises(MalformedTransaction):
        decode_transaction(b"\x02" + rlp.encode(fields), 1337)


def test_type_1_refusals_are_named() -> None:
    with pytest.raises(WrongChainId):
        decode_transaction(EIP2930, 1)
    with pytest.raises(MalformedTransaction):
        decode_transaction(EIP2930[:-3], 1337)
    with pytest.raises(MalformedTransaction):  # a type-1 body with a type-2 tag: one field short
        decode_transaction(b"\x02" + EIP2930[1:], 1337)
    with pytest.raises(MalformedTransaction):
        decode_transaction(b"\x01" + EIP1559[1:], 1337)
    fields = rlp.decode(EIP2930[1:])
    fields[10] = (SECP256K1_N - 1).to_bytes(32, "big")  # high s
    with pytest.raises(InvalidTransactionSignature):
        decode_transaction(b"\x01" + rlp.encode(fields), 1337)
    fields = rlp.decode(EIP2930[1:])
    fields[2] = b"\x00" + fields[2]  # non-canonical gasPrice
    with pytest.raises(MalformedTransaction):
        decode_transaction(b"\x01" + rlp.encode(fields), 1337)
    fields = rlp.decode(EIP2930[1:])
    fields[8] = b"\x02"  # yParity out of range
    with pytest.raises(InvalidTransactionSignature):
        decode_transaction(b"\x01" + rlp.encode(fields), 1337)
    with pytest.raises(OversizedTransaction):
        decode_transaction(b"\x01" + b"\x00" * 200_000, 1337)


def test_tampered_access_list_recovers_another_sender() -> None:
    fields = rlp.decode(EIP2930[1:])
    fields[7] = fields[7][:1]  # an entry dropped after signing
    tx = decode_transaction(b"\x01" + rlp.encode(fields), 1337)
    assert tx.sender != ACCT.address.lower() and len(tx.access_list) == 1


def test_tampered_payload_recovers_another_sender() -> None:
    fields = rlp.decode(EIP1559[1:])
    fields[6] = b"\x06"  # value changed after signing
    tx = decode_transaction(b"\x02" + rlp.encode(fields), 1337)
    assert tx.sender != ACCT.address.lower()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_never_escape_as_other_errors(data: bytes) -> None:
    for raw in (data, b"\x01" + data, b"\x02" + data):
        with contextlib.suppress(TransactionRejected):
            decode_transaction(raw, 1337)


_ENTRY = st.tuples(st.binary(min_size=20, max_size=20), st.lists(st.integers(0, 2**256 - 1), max_size=4))


@settings(max_examples=60, deadline=None)
@given(st.lists(_ENTRY, max_size=5), st.sampled_from([1, 2]))
def test_signed_access_lists_round_trip(entries: list[tuple[bytes, list[int]]], tx_type: int) -> None:
    listed = [
        {"address": "0x" + a.hex(), "storageKeys": ["0x" + k.to_bytes(32, "big").hex() for k in ks]}
        for a, ks in entries
    ]
    fees = {"gasPrice": 1} if tx_type == 1 else {"maxFeePerGas": 2, "maxPriorityFeePerGas": 1}
    fields = {"type": tx_type, "chainId": 1337, "nonce": 1, "gas": 10**6, "to": TO, "accessList": listed, **fees}
    tx = decode_transaction(bytes(ACCT.sign_transaction(fields).raw_transaction), 1337)
    assert tx.sender == ACCT.address.lower()
    assert tx.access_list == tuple(AccessListEntry("0x" + a.hex(), tuple(ks)) for a, ks in entries)
