"""Each bad transaction is refused with its own error, and refusals change nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account
from web3 import Web3

from node import admission
from node.admission import GWEI
from node.block import merkle_root
from node.engine.base import AccessListEntry, StateDiff
from node.txcodec import (
    MAX_ACCESS_LIST_KEYS,
    MAX_TX_BYTES,
    AccessListTooLarge,
    InvalidTransactionSignature,
    MalformedTransaction,
    OversizedTransaction,
    TransactionRejected,
    WrongChainId,
    sign_eip1559,
)
from tests.node.conftest import CHAIN_ID, Setup, address_of, calldata, key_of, tx


def _state(s: Setup) -> tuple[object, ...]:
    n = s.node
    return (
        n.head.number,
        n.head.hash,
        n.mempool_size,
        tuple(n.engine.account(address_of(k)) for k in [s.ta, *s.vehicles]),
        n.engine.storage(s.registry, 0),
    )


def _flip_s(raw: bytes) -> bytes:
    """Corrupt the last byte (inside s): recovery gives another key or none."""
    return raw[:-1] + bytes([raw[-1] ^ 0x01])


def _listed(s: Setup, *entries: tuple[str, range]) -> bytes:
    access = tuple(AccessListEntry(a, tuple(keys)) for a, keys in entries)
    return sign_eip1559(s.ta, CHAIN_ID, 3, s.registry, b"", 10**7, 2 * GWEI, GWEI, access_list=access)


CASES: list[tuple[str, Callable[[Setup], bytes], type[TransactionRejected]]] = [
    ("wrong chain id", lambda s: tx(s.vehicles[0], 0, s.registry, chain_id=CHAIN_ID + 1), WrongChainId),
    ("garbage", lambda s: b"\x02\xc3\x01\x02\x03", MalformedTransaction),
    ("oversize", lambda s: tx(s.vehicles[0], 0, s.registry, b"\x01" * MAX_TX_BYTES), OversizedTransaction),
    ("nonce too low", lambda s: tx(s.ta, 0, s.registry, calldata("admin")), admission.NonceTooLow),
    ("nonce gap too wide", lambda s: tx(s.ta, 3 + 65, s.registry, calldata("admin")), admission.NonceTooHigh),
    ("outsider", lambda s: tx(s.vehicles[2], 0, s.registry, calldata("admin")), admission.SenderNotPermitted),
    ("gas above block limit", lambda s: tx(s.ta, 3, s.registry, gas=30_000_001), admission.GasLimitTooHigh),
    ("gas below intrinsic", lambda s: tx(s.ta, 3, s.registry, b"\x01" * 100, gas=21_000), admission.IntrinsicGasTooLow),
    ("no funds", lambda s: tx(s.ta, 3, s.registry, value=10**24), admission.InsufficientFundsForTransfer),
    (
        "fee below base fee",
        lambda s: sign_eip1559(s.ta, CHAIN_ID, 3, s.registry, b"", 30_000, GWEI // 2, 0),
        admission.FeeTooLow,
    ),
    ("access list too large", lambda s: _listed(s, (s.registry, range(MAX_ACCESS_LIST_KEYS + 1))), AccessListTooLarge),
]


@pytest.mark.parametrize(("name", "make", "error"), CASES, ids=[c[0] for c in CASES])
def test_refused_with_its_own_error_and_nothing_changes(
    setup: Setup, name: str, make: Callable[[Setup], bytes], error: type[TransactionRejected]
) -> None:
    before = _state(setup)
    with pytest.raises(error):
        setup.node.submit(make(setup))
    assert _state(setup) == before


def test_bad_signature_is_refused_or_recovers_an_unknown_sender(setup: Setup) -> None:
    before = _state(setup)
    with pytest.raises((InvalidTransactionSignature, admission.SenderNotPermitted)):
        setup.node.submit(_flip_s(tx(setup.vehicles[0], 0, setup.registry, calldata("admin"))))
    assert _state(setup) == before


def test_duplicate_is_already_known(setup: Setup) -> None:
    raw = tx(setup.ta, 3, setup.registry, calldata("addVehicle", address_of(key_of("x"))))
    setup.send(raw)
    with pytest.raises((admission.AlreadyKnown, admission.NonceTooLow)):
        setup.node.submit(raw)


def test_member_writes_and_revocation_bites_at_once(setup: Setup) -> None:
    vehicle = setup.vehicles[0]
    pseudonym = b"\x11" * 32
    setup.send(tx(setup.ta, 3, setup.registry, calldata("registerIdentity", pseudonym, address_of(vehicle))))
    first = setup.send(
        tx(
            vehicle,
            0,
            setup.registry,
            calldata("commitKey", b"\x01" * 32, address_of(setup.vehicles[1]), b"\x02" * 32, 256, 60),
        )
    )
    assert first.status == 1  # type: ignore[attr-defined]
    # the revocation and the vehicle's next write arrive together: the write never lands
    revoke = tx(setup.ta, 4, setup.registry, calldata("revokeIdentity", pseudonym, "stolen"))
    write = tx(
        vehicle,
        1,
        setup.registry,
        calldata("commitKey", b"\x03" * 32, address_of(setup.vehicles[1]), b"\x02" * 32, 256, 60),
    )
    results = setup.node.submit_many([revoke, write])
    setup.node.wait(results[0])  # type: ignore[arg-type]
    if isinstance(results[1], bytes):
        with pytest.raises(admission.SenderNotPermitted):
            setup.node.wait(results[1])
    else:
        assert isinstance(results[1], admission.SenderNotPermitted)
    with pytest.raises(admission.SenderNotPermitted):
        setup.node.submit(tx(vehicle, 1, setup.registry, calldata("admin")))


def test_parallel_decoding_gives_the_same_results(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> None:
    from node.core import Node
    from tests.node.conftest import VALIDATOR_KEY

    raws = [tx(setup.ta, 3 + i, setup.registry, calldata("addVehicle", address_of(key_of(f"p{i}")))) for i in range(80)]
    raws.insert(40, b"\x02\x00")
    with Node(tmp_path_factory.mktemp("pool"), setup.genesis, VALIDATOR_KEY, workers=2) as pooled:
        assert pooled._pool is not None
        decoded = pooled.submit_many([tx(setup.ta, 0, None, b"\x00", gas=60_000), b"\x02\x00"])
    assert isinstance(decoded[1], MalformedTransaction)
    results = setup.node.submit_many(raws)
    assert isinstance(results[40], MalformedTransaction)
    last = results[-1]
    assert isinstance(last, bytes)
    assert setup.node.wait(last).status == 1


def test_blocks_are_signed_chained_and_commit_to_their_content(setup: Setup) -> None:
    store = setup.node.store
    head = setup.node.head
    assert head.signer() == setup.node.proposer
    for number in range(1, head.number + 1):
        block = store.block_by_number(number)
        parent = store.block_by_number(number - 1)
        assert block is not None and parent is not None
        assert block.header.parent_hash == parent.hash
        assert block.header.tx_root == merkle_root(list(block.tx_hashes))
    assert StateDiff().commitment() != head.header.state_root


@pytest.mark.parametrize("tx_type", [1, 2])
def test_access_list_intrinsic_gas_is_exact(setup: Setup, tx_type: int) -> None:
    """21000 + 2400 per listed address + 1900 per key: one unit less is refused, exactly that
    much pays a transfer (EIP-2930), and a refusal changes nothing."""
    vehicle = Web3.to_checksum_address(address_of(setup.vehicles[0]))
    access = [
        {"address": Web3.to_checksum_address(setup.registry), "storageKeys": [f"0x{k:064x}" for k in (0, 1)]},
        {"address": vehicle, "storageKeys": []},
    ]
    fees = {"gasPrice": 2 * GWEI} if tx_type == 1 else {"maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI}
    base = {"type": tx_type, "chainId": CHAIN_ID, "nonce": 3, "to": vehicle, "value": 1, "accessList": access}

    def signed(gas: int) -> bytes:
        return bytes(Account.from_key(setup.ta).sign_transaction(base | fees | {"gas": gas}).raw_transaction)

    wanted = 21_000 + 2 * 2_400 + 2 * 1_900
    before = _state(setup)
    with pytest.raises(admission.IntrinsicGasTooLow) as refused:
        setup.node.submit(signed(wanted - 1))
    assert refused.value.intrinsic == wanted
    assert _state(setup) == before
    receipt = setup.send(signed(wanted))
    assert (receipt.status, receipt.gas_used) == (1, wanted)  # type: ignore[attr-defined]
