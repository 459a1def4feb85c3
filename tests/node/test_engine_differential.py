"""pyrevm and the eth-tester/py-evm reference agree receipt for receipt.

A long random mix of registry transactions, failing ones included, is signed once,
sent raw to eth-tester, decoded (coincurve recovery) and executed on the revm engine
in a block with the same number and timestamp. Status, logs, revert data, nonces and
the final registry state are identical, and so is gas used to the unit (the engine
runs each transaction cold, see ``node.engine.revm``). Then the same raw transactions
go through the whole node at once (admission, blocks of many transactions, the store),
and every stored receipt and the final state match eth-tester's again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError

from contracts import load_artifact
from node.admission import Genesis
from node.client.chain import EthTesterChain
from node.client.registry import KeyRegistry
from node.client.revert import revert_data_from
from node.client.signer import Signer
from node.core import Node
from node.engine.revm import RevmEngine
from node.txcodec import decode_transaction

GAS = 400_000


def _reference_revert(chain: EthTesterChain, tx: dict[str, object], block: int) -> bytes:
    try:
        chain.w3.eth.call(tx, block_identifier=block - 1)  # type: ignore[arg-type]
    except ContractLogicError as exc:
        return revert_data_from(exc.data)
    return b""


@dataclass
class Mix:
    chain_id: int
    accounts: list[str]
    registry: str
    sent: list[tuple[bytes, dict[str, Any]]]  # (raw transaction, eth-tester's receipt)
    reference: EthTesterChain


def _run_mix() -> Mix:
    chain = EthTesterChain()
    chain_id = chain.w3.eth.chain_id
    engine = RevmEngine(chain_id)
    rnd = random.Random(42)
    accounts = [Account.from_key(keccak(text=f"diff:{i}")) for i in range(6)]
    for acct in accounts:
        chain.fund(acct.address, 10**21)
        engine.fund(acct.address, 10**21)
    signers = [Signer(chain.w3, a) for a in accounts]
    sent: list[tuple[bytes, dict[str, Any]]] = []
    ta = signers[0]
    abi_client = KeyRegistry(chain.w3, "0x" + "00" * 20)  # only for calldata encoding

    def send(signer: Signer, to: str | None, data: bytes, gas: int = GAS) -> tuple[dict[str, object], object]:
        tx: dict[str, object] = {"data": "0x" + data.hex(), "gas": gas}
        if to is not None:
            tx["to"] = to
        raw = signer.sign(tx)
        receipt = signer.wait(signer.send_raw(raw))
        sent.append((bytes(raw), dict(receipt)))
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        engine.begin_block(block["number"], block["timestamp"])
        mine = engine.execute(decode_transaction(bytes(raw), chain_id))
        engine.end_block()
        assert mine.status == receipt["status"]
        assert mine.gas_used == receipt["gasUsed"], (data[:4].hex(), mine.gas_used, receipt["gasUsed"])
        theirs_logs = [
            (log["address"].lower(), tuple(bytes(t) for t in log["topics"]), bytes(log["data"]))
            for log in receipt["logs"]
        ]
        assert [(e.address, e.topics, e.data) for e in mine.logs] == theirs_logs
        if receipt["status"] == 0:
            call = {"from": signer.address, "to": to, "data": "0x" + data.hex(), "gas": gas}
            assert mine.output == _reference_revert(chain, call, receipt["blockNumber"])
        return receipt, mine  # type: ignore[return-value]

    receipt, mine = send(ta, None, load_artifact().bytecode, gas=2_000_000)
    registry = receipt["contractAddress"]  # type: ignore[index]
    assert mine.contract_address == registry.lower()  # type: ignore[attr-defined]

    def encode(fn: str, *args: object) -> bytes:
        return bytes(HexBytes(abi_client.encode(fn, *args)))

    members = accounts[1:5]
    outsider = signers[5]
    sessions = [keccak(text=f"s{i}") for i in range(12)]
    hashes = [keccak(text=f"h{i}") for i in range(3)]
    failures = 0
    for _ in range(220):
        kind = rnd.choice(
            ["add", "add", "remove", "identity", "revoke", "commit", "commit", "confirm", "record", "record"]
        )
        who = rnd.choice(signers)
        if kind == "add":
            fn = rnd.choice(["addVehicle", "addValidator"])
            data = encode(fn, rnd.choice(members).address)
            who = ta if rnd.random() < 0.8 else who
        elif kind == "remove":
            data, who = encode("removeMember", rnd.choice(members).address), ta
        elif kind == "identity":
            data = encode("registerIdentity", keccak(text=f"p{rnd.randrange(6)}"), rnd.choice(accounts).address)
        elif kind == "revoke":
            data, who = encode("revokeIdentity", keccak(text=f"p{rnd.randrange(6)}"), "diff"), ta
        elif kind == "commit":
            data = encode(
                "commitKey",
                rnd.choice(sessions),
                rnd.choice(accounts).address,
                rnd.choice(hashes),
                rnd.choice([0, 256, 1024]),
                rnd.choice([0, 3600, 86400]),  # eth-tester's clock runs 1 s per block: no expiry mid-mix
            )
        elif kind == "confirm":
            data = encode("confirmKey", rnd.choice(sessions), rnd.choice(hashes))
        else:
            data = encode(
                "recordMessage", rnd.choice(sessions), hashes[0], rnd.choice([0, 64, 128]), rnd.choice([0, 64])
            )
        if who is outsider and rnd.random() < 0.5:
            who = rnd.choice(signers[1:5])
        receipt, _ = send(who, registry, data)
        failures += receipt["status"] == 0  # type: ignore[index]
    assert 20 < failures < 200  # the mix exercises both paths

    # final state: every session, identity and role reads the same on both engines
    reads = [encode("getSession", s) for s in sessions]
    reads += [encode("getIdentity", keccak(text=f"p{i}")) for i in range(6)]
    reads += [encode("canWrite", a.address) for a in accounts] + [encode("roleOf", a.address) for a in accounts]
    for data in reads:
        theirs = bytes(chain.w3.eth.call({"to": registry, "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]
        assert engine.call(accounts[0].address, registry, data) == theirs
    for slot in range(4):
        assert engine.storage(registry, slot) == int.from_bytes(chain.w3.eth.get_storage_at(registry, slot), "big")
    assert all(engine.nonce(a.address) == chain.w3.eth.get_transaction_count(a.address) for a in accounts)
    assert engine.evm.journal_len <= 1  # nothing accumulates in revm's journal: memory stays flat
    return Mix(chain_id, [a.address for a in accounts], str(registry), sent, chain)


KEY_COMMITTED = keccak(text="KeyCommitted(bytes32,address,address,bytes32,uint32,uint64)")


def _timeless(log: Any) -> bytes:
    """Log data without ``expiresAt`` (block time + TTL): the node's clock is not eth-tester's."""
    topics = log["topics"] if isinstance(log, dict) else log.topics
    data = bytes(log["data"] if isinstance(log, dict) else log.data)
    return data[:-32] if topics and bytes(topics[0]) == KEY_COMMITTED else data


@pytest.fixture(scope="module")
def mix() -> Mix:
    return _run_mix()


def test_random_registry_mix_agrees(mix: Mix) -> None:
    assert len(mix.sent) == 221


def test_the_whole_node_agrees_with_many_transactions_per_block(mix: Mix, tmp_path: Path) -> None:
    """The same raw transactions through the node (admission, multi-transaction blocks,
    the store): every stored receipt equals eth-tester's, and so does the final state."""
    genesis = Genesis(
        chain_id=mix.chain_id,
        alloc={a.lower(): 10**21 for a in mix.accounts},
        permissioned=False,
        base_fee=0,
        timestamp=int(time.time()),
    )
    with Node(tmp_path, genesis, keccak(text="diff validator"), workers=0) as node:
        results = node.submit_many([raw for raw, _ in mix.sent])
        hashes = [r for r in results if isinstance(r, bytes)]
        assert len(hashes) == len(mix.sent), [r for r in results if not isinstance(r, bytes)][:3]
        node.wait(hashes[-1])
        blocks = {node.store.transaction(h).block_number for h in hashes}  # type: ignore[union-attr]
        assert len(blocks) < len(hashes) / 2  # many transactions per block
        for tx_hash, (_, theirs) in zip(hashes, mix.sent, strict=True):
            mine = node.store.transaction(tx_hash)
            assert mine is not None
            assert (mine.status, mine.gas_used) == (theirs["status"], theirs["gasUsed"])
            their_logs = [
                (log["address"].lower(), tuple(bytes(t) for t in log["topics"]), _timeless(log))
                for log in theirs["logs"]
            ]
            assert [(e.address, e.topics, _timeless(e)) for _, e in mine.logs] == their_logs
            created = theirs["contractAddress"]
            assert mine.contract_address == (created.lower() if created else None)
        w3 = mix.reference.w3
        for slot in range(4):
            theirs_slot = int.from_bytes(w3.eth.get_storage_at(mix.registry, slot), "big")  # type: ignore[arg-type]
            assert node.engine.storage(mix.registry.lower(), slot) == theirs_slot
        for account in mix.accounts:
            assert node.engine.nonce(account.lower()) == w3.eth.get_transaction_count(account)  # type: ignore[arg-type]


def test_historical_reads_agree_with_eth_tester_at_every_block(mix: Mix, tmp_path: Path) -> None:
    """The mix again, one transaction per block, through a served node: at every block, nonces,
    the registry's slots and its views read the same as eth-tester's at its matching block."""
    from node.server import RpcServer

    genesis = Genesis(chain_id=mix.chain_id, alloc={a.lower(): 10**21 for a in mix.accounts}, permissioned=False,
                      base_fee=0, timestamp=int(time.time()))  # fmt: skip
    theirs_w3 = mix.reference.w3
    abi_client = KeyRegistry(theirs_w3, "0x" + "00" * 20)
    views = [abi_client.encode("getSession", keccak(text=f"s{i}")) for i in range(0, 12, 3)]
    views += [abi_client.encode("roleOf", a) for a in mix.accounts[:5]]
    with Node(tmp_path, genesis, keccak(text="diff validator"), workers=0) as node, RpcServer(node, port=0) as server:
        ours_w3 = Web3(Web3.HTTPProvider(server.url))
        pairs = []  # (our block, their block) after each transaction
        for raw, receipt in mix.sent:
            pairs.append((node.wait(node.submit(raw)).block_number, int(receipt["blockNumber"])))
        for k, (ours, theirs) in enumerate(pairs):  # every block: the slots, and in turn an account and views
            account = mix.accounts[k % len(mix.accounts)]
            assert ours_w3.eth.get_transaction_count(account, ours) == theirs_w3.eth.get_transaction_count(
                account,
                theirs,  # type: ignore[arg-type]
            ), (ours, account)
            for slot in range(4):  # eth-tester's web3 bridge sends hex block numbers its own check refuses
                theirs_slot = mix.reference.tester.get_storage_at(mix.registry, hex(slot), theirs)
                assert int.from_bytes(ours_w3.eth.get_storage_at(mix.registry, slot, ours), "big") == int(
                    theirs_slot, 16
                ), (ours, slot)
            for data in (views[k % len(views)], views[(k + 4) % len(views)]):
                call = {"to": mix.registry, "data": data}
                assert ours_w3.eth.call(call, ours) == theirs_w3.eth.call(call, theirs), (ours, data[:10])  # type: ignore[arg-type]
