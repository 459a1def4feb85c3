"""Blocks: a header committing to transactions, receipts and state changes, signed by its proposer.

The roots are binary Merkle roots over keccak leaves, not Ethereum's Patricia tries:
they commit to the same content (a light client can check inclusion with a log-size
proof) at a fraction of the cost. ``stateRoot`` commits to the block's state writes
(:meth:`node.engine.base.StateDiff.commitment`), not to the whole state; the
header carries no log bloom: the receipts root already commits to every log, and
the RPC computes ``logsBloom`` from the stored logs when asked. The
proposer's recoverable secp256k1 signature over the header hash is served as
``proposerSignature`` (Clique and QBFT put seals in ``extraData``, but web3.py
refuses an ``extraData`` longer than 32 bytes unless a POA middleware is added).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from coincurve import PrivateKey, PublicKey

from node.engine.base import ExecutionReceipt, LogEntry
from node.hashing import address_of_public, keccak

EMPTY_ROOT = keccak(b"")
BLOOM_BYTES = 256


def merkle_root(leaves: list[bytes]) -> bytes:
    """Binary Merkle root of 32-byte leaves (an odd node is paired with itself)."""
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def receipt_leaf(status: int, cumulative_gas: int, logs: tuple[LogEntry, ...]) -> bytes:
    """keccak of a fixed-width encoding: status, cumulative gas, then each log (address,
    topic count, topics, data length, data) — unambiguous, and far cheaper than RLP here."""
    parts = [bytes([status]), cumulative_gas.to_bytes(8, "big")]
    for log in logs:
        parts += [bytes.fromhex(log.address[2:]), bytes([len(log.topics)]), *log.topics]
        parts += [len(log.data).to_bytes(4, "big"), log.data]
    return keccak(b"".join(parts))


def logs_bloom(logs: list[LogEntry]) -> bytes:
    """The Ethereum 2048-bit log bloom (yellow paper, eq. 26)."""
    bloom = 0
    for log in logs:
        for item in (bytes.fromhex(log.address[2:]), *log.topics):
            digest = keccak(item)
            for i in (0, 2, 4):
                bloom |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bloom.to_bytes(BLOOM_BYTES, "big")


@dataclass(frozen=True)
class BlockHeader:
    number: int
    parent_hash: bytes
    timestamp: int
    proposer: str
    gas_limit: int
    gas_used: int
    base_fee: int
    tx_root: bytes
    receipts_root: bytes
    state_root: bytes

    def fields(self) -> list[object]:
        return [
            self.number,
            self.parent_hash,
            self.timestamp,
            bytes.fromhex(self.proposer[2:]),
            self.gas_limit,
            self.gas_used,
            self.base_fee,
            self.tx_root,
            self.receipts_root,
            self.state_root,
        ]

    @property
    def hash(self) -> bytes:
        return keccak(rlp.encode(self.fields()))


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    signature: bytes  # 65 bytes r || s || recovery id, by the proposer over ``header.hash``
    tx_hashes: tuple[bytes, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def number(self) -> int:
        return self.header.number

    def signer(self) -> str:
        """The address that signed this block."""
        public = PublicKey.from_signature_and_message(self.signature, self.hash, hasher=None)
        return address_of_public(public)


@dataclass(frozen=True)
class SealedReceipt:
    """An execution receipt placed in a block."""

    tx_hash: bytes
    sender: str
    to: str | None
    index: int
    cumulative_gas: int
    effective_gas_price: int
    execution: ExecutionReceipt


def seal(
    key: PrivateKey,
    parent_hash: bytes,
    number: int,
    timestamp: int,
    gas_limit: int,
    base_fee: int,
    receipts: list[SealedReceipt],
    state_root: bytes,
) -> Block:
    """Build the header over ``receipts`` and sign it with the proposer's ``key``."""
    header = BlockHeader(
        number=number,
        parent_hash=parent_hash,
        timestamp=timestamp,
        proposer=address_of_public(key.public_key),
        gas_limit=gas_limit,
        gas_used=receipts[-1].cumulative_gas if receipts else 0,
        base_fee=base_fee,
        tx_root=merkle_root([r.tx_hash for r in receipts]),
        receipts_root=merkle_root(
            [receipt_leaf(r.execution.status, r.cumulative_gas, r.execution.logs) for r in receipts]
        ),
        state_root=state_root,
    )
    signature = key.sign_recoverable(header.hash, hasher=None)
    return Block(header, signature, tuple(r.tx_hash for r in receipts))
