"""Blocks: a header committing to transactions, receipts and state changes, signed by its proposer.

The roots are binary Merkle roots over keccak leaves, not Ethereum's Patricia tries:
they commit to the same content (a light client can check inclusion with a log-size
proof) at a fraction of the cost. ``stateRoot`` commits to the block's state writes
(:meth:`node.engine.base.StateDiff.commitment`), not to the whole state; the
header carries no log bloom: the receipts root already commits to every log, and
the RPC computes ``logsBloom`` from the stored logs when asked.

QBFT fields, as Besu keeps them in ``extraData``: the consensus ``round`` the block was
proposed in and the ``validators`` that validate the *next* block (a validator added or
removed through the registry in block h takes effect at h + 1, identically on every
node). The block hash covers the validators and excludes the round and the seals, so
validators that decide one block in different rounds hold one chain; the proposer's
recoverable secp256k1 signature (``proposerSignature`` over RPC) and the commit seals,
one per committing validator, sign the ``seal_digest``, which adds the round (as QBFT's
commit seals do). A quorum of seals proves the block final to anyone who knows the
validator set (web3.py refuses an ``extraData``
longer than 32 bytes unless a POA middleware is added, so they are served as
``commitSeals``). The genesis block is unsigned, so every node derives the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

from coincurve import PrivateKey, PublicKey

from node import rlpcodec
from node.engine.base import ExecutionReceipt, LogEntry
from node.errors import NodeError
from node.hashing import address_of_public, keccak

EMPTY_ROOT = keccak(b"")
BLOOM_BYTES = 256
MAX_VALIDATORS = 256
MAX_BLOCK_BYTES = 32 * 1024 * 1024


class MalformedBlock(NodeError):
    """Block bytes from a peer that do not decode to a well-formed block."""


def _uint(data: bytes) -> int:
    if len(data) > 8 or data[:1] == b"\x00":
        raise MalformedBlock("integers are at most 64 bits, without leading zeros")
    return int.from_bytes(data, "big")


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
    round: int = 0
    validators: tuple[str, ...] = ()  # the validator set of the next block

    def fields(self) -> list[rlpcodec.Encodable]:
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
            [bytes.fromhex(v[2:]) for v in self.validators],
            self.round,
        ]

    @property
    def hash(self) -> bytes:
        """The block's identity: everything but the round (and the seals, kept outside the header).

        Validators that decide the same block in different rounds store the same hash, so
        the chain of parent hashes is one chain on every node (QBFT agrees on content).
        """
        return keccak(rlpcodec.encode(self.fields()[:-1]))

    @property
    def seal_digest(self) -> bytes:
        """What the proposer signature and the commit seals sign: the block *and* its round."""
        return keccak(rlpcodec.encode(self.fields()))

    @classmethod
    def from_fields(cls, fields: Any) -> BlockHeader:
        """The inverse of :meth:`fields`, strict about widths.

        Raises:
            MalformedBlock: wrong field count, widths or integers.
        """
        if not isinstance(fields, list) or len(fields) != 12 or not isinstance(fields[10], list):
            raise MalformedBlock("a header has 12 fields, the 11th a list of validators")
        scalars = [*fields[:10], fields[11]]
        if any(not isinstance(f, bytes) for f in scalars) or any(not isinstance(v, bytes) for v in fields[10]):
            raise MalformedBlock("header fields are byte strings")
        number, parent, ts, proposer, gas_limit, gas_used, base_fee, tx_root, rc_root, state_root, rnd = scalars
        if any(len(x) != 32 for x in (parent, tx_root, rc_root, state_root)) or len(proposer) != 20:
            raise MalformedBlock("hashes are 32 bytes and the proposer 20")
        if any(len(v) != 20 for v in fields[10]) or len(fields[10]) > MAX_VALIDATORS:
            raise MalformedBlock("validators are 20-byte addresses")
        return cls(
            number=_uint(number), parent_hash=parent, timestamp=_uint(ts), proposer="0x" + proposer.hex(),
            gas_limit=_uint(gas_limit), gas_used=_uint(gas_used), base_fee=_uint(base_fee), tx_root=tx_root,
            receipts_root=rc_root, state_root=state_root, round=_uint(rnd),
            validators=tuple("0x" + v.hex() for v in fields[10]),
        )  # fmt: skip

    def with_round(self, round_: int) -> BlockHeader:
        return replace(self, round=round_)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    signature: bytes  # 65 bytes r || s || recovery id, by the proposer over ``header.seal_digest``; b"" for genesis
    tx_hashes: tuple[bytes, ...]
    seals: tuple[bytes, ...] = ()  # commit seals (65 bytes each) of a quorum of validators

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def number(self) -> int:
        return self.header.number

    def signer(self) -> str:
        """The address that signed this block."""
        public = PublicKey.from_signature_and_message(self.signature, self.header.seal_digest, hasher=None)
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


def encode_block(block: Block, raws: list[bytes]) -> bytes:
    """Wire form of a block with its raw transactions (proposals and sync)."""
    return rlpcodec.encode([block.header.fields(), block.signature, list(block.seals), list(raws)])


def decode_block(data: bytes) -> tuple[BlockHeader, bytes, tuple[bytes, ...], list[bytes]]:
    """Header, proposer signature, seals and raw transactions from :func:`encode_block`'s bytes.

    The transaction hashes are not trusted from the wire: the caller decodes the raws.

    Raises:
        MalformedBlock: too large, not RLP, or any field of the wrong shape.
    """
    if len(data) > MAX_BLOCK_BYTES:
        raise MalformedBlock(f"{len(data):,} bytes is over the {MAX_BLOCK_BYTES:,}-byte limit")
    try:
        items = rlpcodec.decode(data)
    except rlpcodec.RlpError as exc:
        raise MalformedBlock(f"not RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) != 4:
        raise MalformedBlock("a block is [header, signature, seals, transactions]")
    header_fields, signature, seals, raws = cast(list[Any], items)
    header = BlockHeader.from_fields(header_fields)
    if not isinstance(signature, bytes) or len(signature) not in (0, 65):
        raise MalformedBlock("the proposer signature is 65 bytes")
    if not isinstance(seals, list) or any(not isinstance(x, bytes) or len(x) != 65 for x in seals):
        raise MalformedBlock("commit seals are 65 bytes each")
    if not isinstance(raws, list) or any(not isinstance(x, bytes) for x in raws):
        raise MalformedBlock("transactions are byte strings")
    return header, signature, tuple(seals), raws


def seal(
    key: PrivateKey,
    parent_hash: bytes,
    number: int,
    timestamp: int,
    gas_limit: int,
    base_fee: int,
    receipts: list[SealedReceipt],
    state_root: bytes,
    validators: tuple[str, ...],
    round_: int = 0,
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
        round=round_,
        validators=validators,
    )
    signature = key.sign_recoverable(header.seal_digest, hasher=None)
    return Block(header, signature, tuple(r.tx_hash for r in receipts))


def genesis_block(
    timestamp: int, gas_limit: int, base_fee: int, state_root: bytes, validators: tuple[str, ...]
) -> Block:
    """Block 0: unsigned, so every node of a network derives the same one from the genesis file."""
    header = BlockHeader(0, bytes(32), timestamp, "0x" + "00" * 20, gas_limit, 0, base_fee, EMPTY_ROOT, EMPTY_ROOT,
                         state_root, 0, validators)  # fmt: skip
    return Block(header, b"", ())
