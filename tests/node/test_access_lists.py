"""Access lists (EIP-2930) on the revm engine agree with eth-tester/py-evm to the unit of gas.

A random mix of legacy, type-1 and type-2 transactions is signed once and sent raw to
eth-tester and to the revm engine: registry calls, plain transfers, deployments, and
calls of a small contract that clears eight slots (its refunds hit the EIP-3529 cap,
which counts the access list's intrinsic gas). The typed ones carry access lists that
name the registry and slots it reads or writes, slots it never touches, the sender,
precompiles, fresh accounts, duplicates and the address a deployment is about to
create. Status, gas used, logs, the created address and the final state are
equal; then the same raw transactions go through the whole node (admission, blocks of
many transactions, the store) and every stored receipt equals eth-tester's again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from contracts import load_artifact
from node.admission import Genesis, contract_address, intrinsic_gas
from node.client.chain import EthTesterChain
from node.client.registry import KeyRegistry
from node.core import Node
from node.engine.base import AccessListEntry
from node.engine.revm import RevmEngine
from node.txcodec import decode_transaction

GAS = 400_000
GAS_PRICE = 3 * 10**9  # above eth-tester's base fee
SLOTS = 8  # slots the clearer sets and clears
SESSIONS = 16


def _clearer() -> bytes:
    """Init code: set slots 0..7 to 1; the runtime clears them on a call with calldata, sets them on one without."""
    clear = b"".join(bytes([0x60, 0, 0x60, i, 0x55]) for i in range(SLOTS))  # PUSH1 0 PUSH1 i SSTORE
    put = b"".join(bytes([0x60, 1, 0x60, i, 0x55]) for i in range(SLOTS))
    # CALLDATASIZE ISZERO PUSH1 <put> JUMPI <clear> STOP JUMPDEST <put> STOP
    runtime = bytes([0x36, 0x15, 0x60, 5 + len(clear) + 1, 0x57]) + clear + b"\x00\x5b" + put + b"\x00"
    # <put> PUSH1 len PUSH1 offset PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN <runtime>
    offset = len(put) + 12
    return put + bytes([0x60, len(runtime), 0x60, offset, 0x60, 0, 0x39, 0x60, len(runtime), 0x60, 0, 0xF3]) + runtime


def _cs(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


def _slot(key: bytes, mapping: int) -> int:
    return int.from_bytes(keccak(key.rjust(32, b"\0") + mapping.to_bytes(32, "big")), "big")


@dataclass
class Sent:
    raw: bytes
    receipt: dict[str, Any]  # eth-tester's
    listed: bool  # the transaction carries a non-empty access list


@dataclass
class Mix:
    chain_id: int
    accounts: list[str]
    registry: str
    clearer: str
    recipients: list[str]
    sent: list[Sent]
    reference: EthTesterChain
    engine: RevmEngine


class _Run:
    """Signs each transaction once, sends it to eth-tester, executes it on the engine, compares."""

    def __init__(self) -> None:
        self.chain = EthTesterChain()
        self.chain_id = self.chain.w3.eth.chain_id
        self.engine = RevmEngine(self.chain_id)
        self.rnd = random.Random(2930)
        self.sent: list[Sent] = []
        self.nonces: dict[str, int] = {}
        self.capped = 0  # transactions with an access list whose refund revm capped

    def send(
        self, who: LocalAccount, to: str | None, data: bytes, access: list[tuple[str, list[int]]] | None, **kw: Any
    ) -> tuple[dict[str, Any], Any]:
        """``access`` ``None``: a legacy transaction; otherwise type ``tx_type`` (1 or 2, at random
        if not given) with that list."""
        nonce = self.nonces.get(who.address, 0)
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": nonce, "gas": kw.get("gas", GAS), "data": data}
        tx["value"] = kw.get("value", 0)
        if to is not None:
            tx["to"] = Web3.to_checksum_address(to)
        if access is None:
            tx["gasPrice"] = GAS_PRICE
        else:
            listed = [
                {
                    "address": Web3.to_checksum_address(a),
                    "storageKeys": ["0x" + k.to_bytes(32, "big").hex() for k in ks],
                }
                for a, ks in access
            ]
            if kw.get("tx_type", self.rnd.choice([1, 2])) == 1:
                tx |= {"type": 1, "gasPrice": GAS_PRICE, "accessList": listed}
            else:
                tx |= {"maxFeePerGas": GAS_PRICE, "maxPriorityFeePerGas": 10**9, "accessList": listed}
        raw = bytes(who.sign_transaction(tx).raw_transaction)
        assert access is None or raw[0] == tx.get("type", 2)
        self.nonces[who.address] = nonce + 1
        w3 = self.chain.w3
        receipt: dict[str, Any] = dict(w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw)))
        self.sent.append(Sent(raw, receipt, bool(access)))
        block = w3.eth.get_block(receipt["blockNumber"])
        decoded = decode_transaction(raw, self.chain_id)
        assert [(e.address, list(e.storage_keys)) for e in decoded.access_list] == [
            (a.lower(), ks) for a, ks in access or []
        ]
        self.engine.begin_block(block["number"], block["timestamp"])
        mine = self.engine.execute(decoded)
        self.engine.end_block()
        result = self.engine.evm.result
        if access and result is not None and result.gas_refunded:
            self.capped += result.gas_refunded == (result.gas_used + result.gas_refunded) // 5
        assert (mine.status, mine.gas_used) == (receipt["status"], receipt["gasUsed"]), (data[:4].hex(), access)
        theirs_logs = [
            (log["address"].lower(), tuple(bytes(t) for t in log["topics"]), bytes(log["data"]))
            for log in receipt["logs"]
        ]
        assert [(e.address, e.topics, e.data) for e in mine.logs] == theirs_logs
        created = receipt["contractAddress"]
        assert mine.contract_address == (created.lower() if created else None)
        if to is not None and not data and not w3.eth.get_code(tx["to"]):
            assert mine.gas_used == intrinsic_gas(decoded)  # a plain transfer costs its intrinsic gas only
        return receipt, mine

    def access_list(self, pool: list[tuple[str, list[int]]], extra: list[str]) -> list[tuple[str, list[int]]] | None:
        """``None`` (legacy) a quarter of the time, else up to five entries from ``pool`` and ``extra``."""
        rnd = self.rnd
        if rnd.random() < 0.25:
            return None
        listed: list[tuple[str, list[int]]] = []
        for _ in range(rnd.randrange(6)):
            if rnd.random() < 0.6:
                address, candidates = rnd.choice(pool)
                keys = rnd.sample(candidates, rnd.randrange(min(len(candidates), 4) + 1))
                if rnd.random() < 0.3:
                    keys.append(rnd.getrandbits(256))  # a slot nothing reads
                listed.append((address, keys))
            else:
                listed.append((rnd.choice(extra), []))
        if listed and rnd.random() < 0.15:
            listed.append(rnd.choice(listed))  # duplicates are charged again and change nothing else
        return listed


def _run_mix() -> Mix:
    run = _Run()
    rnd, chain = run.rnd, run.chain
    accounts = [Account.from_key(keccak(text=f"access:{i}")) for i in range(5)]
    for acct in accounts:
        chain.fund(acct.address, 10**21)
        run.engine.fund(acct.address, 10**21)
    ta, members = accounts[0], accounts[1:4]
    abi = KeyRegistry(chain.w3, "0x" + "00" * 20)

    def encode(fn: str, *args: object) -> bytes:
        return bytes(HexBytes(abi.encode(fn, *args)))

    # deployments naming the address about to be created, and the slots the constructor writes
    registry = contract_address(ta.address.lower(), 0)
    receipt, _ = run.send(ta, None, load_artifact().bytecode, [(registry, [0, 1])], gas=2_000_000)
    assert receipt["contractAddress"].lower() == registry
    clearer = contract_address(ta.address.lower(), 1)
    receipt, _ = run.send(ta, None, _clearer(), [(clearer, [0, 5, 9])], gas=300_000)
    assert receipt["contractAddress"].lower() == clearer

    # clearing eight slots refunds more than a fifth of the gas spent: the cap counts the list's gas
    for tx_type, access in [(1, [(clearer, list(range(SLOTS)))]), (2, [(clearer, [1, 3]), (registry, [])])]:
        run.send(ta, clearer, b"", None)
        capped = run.capped
        run.send(ta, clearer, b"\x01", access, tx_type=tx_type)
        assert run.capped == capped + 1
        run.send(members[0], clearer, b"", access, tx_type=3 - tx_type)
        run.send(members[1], clearer, b"\x01", [(registry, [0])], tx_type=tx_type)
    assert run.capped == 4

    sessions = [keccak(text=f"s{i}") for i in range(SESSIONS)]
    pseudonyms = [keccak(text=f"p{i}") for i in range(4)]
    hashes = [keccak(text=f"h{i}") for i in range(2)]
    registry_slots = [0, 4, 5] + [_slot(bytes.fromhex(a.address[2:]), 1) for a in accounts]
    registry_slots += [_slot(p, 2) + i for p in pseudonyms for i in range(2)]
    registry_slots += [_slot(s, 3) + i for s in sessions for i in range(3)]
    pool = [(registry, registry_slots), (clearer, list(range(SLOTS + 2)))]
    recipients = ["0x" + keccak(text=f"r{i}")[:20].hex() for i in range(3)]
    extra = [a.address.lower() for a in accounts] + recipients + ["0x" + "00" * 19 + f"{i:02x}" for i in (1, 2, 9)]
    for member in members:
        run.send(
            ta,
            registry,
            encode("addVehicle", member.address),
            [(registry, [0, _slot(bytes.fromhex(member.address[2:]), 1)])],
        )
    for _ in range(200):
        kind = rnd.choice(["add", "remove", "identity", "commit", "commit", "confirm", "record", "clear", "pay"])
        who = rnd.choice(members) if rnd.random() < 0.8 else rnd.choice(accounts)
        to, value = registry, 0
        if kind == "add":
            data, who = encode(rnd.choice(["addVehicle", "addValidator"]), rnd.choice(members).address), ta
        elif kind == "remove":
            data, who = encode("removeMember", rnd.choice(members).address), ta
        elif kind == "identity":
            data, who = encode("registerIdentity", rnd.choice(pseudonyms), rnd.choice(accounts).address), ta
        elif kind == "commit":
            ttl = rnd.choice([0, 3600, 3600, 86400])  # eth-tester's clock runs 1 s per block: no expiry
            peer = rnd.choice([m for m in members if m is not who])
            data = encode("commitKey", rnd.choice(sessions), peer.address, hashes[0], 256, ttl)
        elif kind == "confirm":
            data = encode("confirmKey", rnd.choice(sessions), rnd.choice(hashes))
        elif kind == "record":
            data = encode("recordMessage", rnd.choice(sessions), hashes[0], rnd.choice([0, 64]), 64)
        elif kind == "clear":
            to, data = clearer, rnd.choice([b"", b"\x01"])
        else:
            to, data, value = rnd.choice(recipients + [a.address.lower() for a in accounts]), b"", 10**15
        run.send(who, to, data, run.access_list(pool, extra), value=value)

    listed = [s.receipt["status"] for s in run.sent if s.listed]
    assert len(listed) > 120 and 40 < listed.count(1) < len(listed) - 40  # both paths, with lists
    return Mix(
        run.chain_id,
        [a.address for a in accounts],
        registry,
        clearer,
        recipients,
        run.sent,
        chain,
        run.engine,
    )


@pytest.fixture(scope="module")
def mix() -> Mix:
    return _run_mix()


def _registry_views(mix: Mix) -> list[bytes]:
    abi = KeyRegistry(mix.reference.w3, "0x" + "00" * 20)
    views = [abi.encode("getSession", keccak(text=f"s{i}")) for i in range(SESSIONS)]
    views += [abi.encode("getIdentity", keccak(text=f"p{i}")) for i in range(4)]
    views += [abi.encode("roleOf", a) for a in mix.accounts]
    return [bytes(HexBytes(v)) for v in views]


def test_engine_agrees_with_eth_tester_and_keeps_nothing_warm(mix: Mix) -> None:
    """Every receipt already agreed in the mix; the final state does too, and the journal is empty."""
    w3, engine = mix.reference.w3, mix.engine
    for data in _registry_views(mix):
        theirs = bytes(w3.eth.call({"to": _cs(mix.registry), "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]
        assert engine.call(mix.accounts[0], mix.registry, data) == theirs
    for address, slots in ((mix.registry, range(4)), (mix.clearer, range(SLOTS))):
        for slot in slots:
            theirs_slot = int.from_bytes(w3.eth.get_storage_at(_cs(address), slot), "big")
            assert engine.storage(address, slot) == theirs_slot
    for account in mix.recipients:
        assert engine.balance(account) == w3.eth.get_balance(_cs(account))
    for account in mix.accounts:
        assert engine.nonce(account.lower()) == w3.eth.get_transaction_count(account)  # type: ignore[arg-type]
    assert engine.evm.journal_len <= 1
    # only the coinbase (EIP-3651, loaded by revm outside the journal) stays in the journal's state
    assert set(engine.evm.journal_state) <= {"0x" + "00" * 20}


def test_simulation_warms_and_charges_its_access_list(mix: Mix) -> None:
    """``admin()`` reads slot 0 once: listing it costs 1900 and saves 2000 (warm, not cold), listing
    the registry (already warm as the recipient) costs 2400; and nothing stays warm afterwards."""
    engine, admin = mix.engine, bytes.fromhex("f851a440")
    plain = engine.simulate(mix.accounts[1], mix.registry, admin, 0, GAS)
    listed = engine.simulate(mix.accounts[1], mix.registry, admin, 0, GAS, (AccessListEntry(mix.registry, (0,)),))
    assert (plain.status, listed.status, listed.output) == (1, 1, plain.output)
    assert listed.gas_used - plain.gas_used == 2400 + 1900 - 2000
    assert engine.simulate(mix.accounts[1], mix.registry, admin, 0, GAS) == plain


def test_the_whole_node_agrees(mix: Mix, tmp_path: Path) -> None:
    """The same raw transactions through the node: admission (intrinsic gas with access lists),
    blocks of many transactions, the store; every stored receipt equals eth-tester's."""
    genesis = Genesis(
        chain_id=mix.chain_id,
        alloc={a.lower(): 10**21 for a in mix.accounts},
        permissioned=False,
        base_fee=0,
        timestamp=int(time.time()),
    )
    key_committed = keccak(text="KeyCommitted(bytes32,address,address,bytes32,uint32,uint64)")

    def timeless(topics: Any, data: bytes) -> bytes:  # expiresAt is block time + TTL: clocks differ
        return data[:-32] if topics and bytes(topics[0]) == key_committed else data

    with Node(tmp_path, genesis, keccak(text="access validator"), workers=0) as node:
        results = node.submit_many([s.raw for s in mix.sent])
        hashes = [r for r in results if isinstance(r, bytes)]
        assert len(hashes) == len(mix.sent), [r for r in results if not isinstance(r, bytes)][:3]
        node.wait(hashes[-1])
        blocks = {node.store.transaction(h).block_number for h in hashes}  # type: ignore[union-attr]
        assert len(blocks) < len(hashes) / 2
        for tx_hash, sent in zip(hashes, mix.sent, strict=True):
            mine, theirs = node.store.transaction(tx_hash), sent.receipt
            assert mine is not None
            assert (mine.status, mine.gas_used) == (theirs["status"], theirs["gasUsed"])
            their_logs = [
                (log["address"].lower(), tuple(bytes(t) for t in log["topics"]), timeless(log["topics"], log["data"]))
                for log in theirs["logs"]
            ]
            assert [(e.address, e.topics, timeless(e.topics, e.data)) for _, e in mine.logs] == their_logs
        for slot in range(SLOTS):
            theirs_slot = int.from_bytes(mix.reference.w3.eth.get_storage_at(_cs(mix.clearer), slot), "big")
            assert node.engine.storage(mix.clearer, slot) == theirs_slot
