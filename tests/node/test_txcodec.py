"""Strict raw-transaction decoding and coincurve sender recovery."""

from __future__ import annotations

import contextlib

import pytest
import rlp
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from node.txcodec import (
    SECP256K1_N,
    InvalidTransactionSignature,
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


@pytest.mark.parametrize("raw", [EIP1559, LEGACY], ids=["eip1559", "legacy"])
def test_decodes_and_recovers(raw: bytes) -> None:
    tx = decode_transaction(raw, 1337)
    assert tx.sender == ACCT.address.lower()
    assert tx.to == TO and tx.gas == 50_000


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


def test_tampered_payload_recovers_another_sender() -> None:
    fields = rlp.decode(EIP1559[1:])
    fields[6] = b"\x06"  # value changed after signing
    tx = decode_transaction(b"\x02" + rlp.encode(fields), 1337)
    assert tx.sender != ACCT.address.lower()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_never_escape_as_other_errors(data: bytes) -> None:
    for raw in (data, b"\x02" + data):
        with contextlib.suppress(TransactionRejected):
            decode_transaction(raw, 1337)
