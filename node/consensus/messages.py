"""QBFT messages, their signatures and their strict, bounded RLP wire form.

Every message travels as ``[kind, fields, signature, extras]``. The signature is a
65-byte recoverable secp256k1 signature over ``keccak(rlp([kind, fields]))``: the
*signed* part is the specification's unsigned payload (for a PROPOSAL the height,
round and block; for a ROUND-CHANGE the height, round, prepared round and prepared
digest). ``extras`` carry what justifies a message without being signed by its
sender, since each piece is signed by its own author or bound by a digest: a
proposal's round-change and prepare justifications, a round change's prepared
block and prepare certificate. Round changes nested in a proposal are *stripped*
of their extras (the proposal carries the block and the one certificate needed).

``decode`` accepts nothing it would not produce: canonical RLP, exact field widths,
integers below 2**64, bounded lengths, low-s signatures. It raises only
:class:`~node.consensus.errors.ConsensusError` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, cast

from coincurve import PrivateKey, PublicKey

from node import rlpcodec
from node.consensus.errors import BadSignature, MalformedMessage, OversizedMessage
from node.hashing import address_of_public, keccak

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Upper bound of an encoded message (a proposal carries a whole block)."""
MAX_JUSTIFICATION = 256
"""Upper bound of the messages in one justification list (one per validator)."""
DIGEST_BYTES = 32
SIGNATURE_BYTES = 65
MAX_UINT = 2**64 - 1

PROPOSAL = 0x12
PREPARE = 0x13
COMMIT = 0x14
ROUND_CHANGE = 0x15

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Prepare:
    """A vote that the proposal of ``(height, round)`` with block ``digest`` is valid."""

    height: int
    round: int
    digest: bytes


@dataclass(frozen=True)
class Commit:
    """A vote to decide ``digest``; ``commit_seal`` is the committer's signature over it."""

    height: int
    round: int
    digest: bytes
    commit_seal: bytes


@dataclass(frozen=True)
class RoundChange:
    """A request to move to ``round``, carrying the sender's latest prepared value if any.

    ``prepared_round`` and ``prepared_digest`` are signed; ``prepared_block`` (whose
    digest must be ``prepared_digest``) and ``prepares`` (the quorum of PREPAREs that
    prepared it) travel alongside, unsigned by this sender.
    """

    height: int
    round: int
    prepared_round: int | None = None
    prepared_digest: bytes | None = None
    prepared_block: bytes | None = None
    prepares: tuple[Signed[Prepare], ...] = ()

    def stripped(self) -> RoundChange:
        """This round change without the unsigned block and certificate (as nested in a proposal)."""
        return replace(self, prepared_block=None, prepares=())


@dataclass(frozen=True)
class Proposal:
    """The proposer's ``block`` for ``(height, round)`` and, for round > 0, its justification."""

    height: int
    round: int
    block: bytes
    round_change_justification: tuple[Signed[RoundChange], ...] = ()
    prepare_justification: tuple[Signed[Prepare], ...] = ()


Payload = Proposal | Prepare | Commit | RoundChange
P = TypeVar("P", Proposal, Prepare, Commit, RoundChange)


@dataclass(frozen=True)
class Signed(Generic[P]):
    """``payload`` with its sender's signature; ``sender`` is the address recovered from it."""

    payload: P
    signature: bytes
    sender: str


SignedMessage = Signed[Proposal] | Signed[Prepare] | Signed[Commit] | Signed[RoundChange]


# --- signing -------------------------------------------------------------------------


def _opt(value: int | bytes | None) -> list[int | bytes]:
    return [] if value is None else [value]


def _kind(payload: Payload) -> int:
    if isinstance(payload, Proposal):
        return PROPOSAL
    if isinstance(payload, Prepare):
        return PREPARE
    if isinstance(payload, Commit):
        return COMMIT
    return ROUND_CHANGE


def _signed_fields(payload: Payload) -> list[Any]:
    if isinstance(payload, Proposal):
        return [payload.height, payload.round, payload.block]
    if isinstance(payload, Prepare):
        return [payload.height, payload.round, payload.digest]
    if isinstance(payload, Commit):
        return [payload.height, payload.round, payload.digest, payload.commit_seal]
    return [payload.height, payload.round, _opt(payload.prepared_round), _opt(payload.prepared_digest)]


def signing_hash(payload: Payload) -> bytes:
    """keccak of the signed part of ``payload``: what its sender's signature covers."""
    return keccak(rlpcodec.encode([_kind(payload), _signed_fields(payload)]))


def sign(payload: P, key: PrivateKey) -> Signed[P]:
    """``payload`` signed with ``key``."""
    signature = key.sign_recoverable(signing_hash(payload), hasher=None)
    return Signed(payload, signature, address_of_public(key.public_key))


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The address whose key made the 65-byte ``signature`` over the 32-byte ``digest``.

    Raises:
        BadSignature: wrong length, ``v`` not 0/1, ``r`` or ``s`` out of range, a
            high ``s`` (so a signature has exactly one encoding), or no key recovers.
    """
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"signature of {len(signature)} bytes, {SIGNATURE_BYTES} expected")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if signature[64] > 1 or not 0 < r < _SECP256K1_N or not 0 < s <= _SECP256K1_N // 2:
        raise BadSignature("signature components out of range")
    try:
        public = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except ValueError as exc:  # coincurve's only failure for well-sized input
        raise BadSignature("no public key recovers from the signature") from exc
    return address_of_public(public)


# --- encoding ------------------------------------------------------------------------


def _item(signed: SignedMessage) -> list[Any]:
    payload = signed.payload
    extras: list[Any]
    if isinstance(payload, Proposal):
        extras = [
            [_item(m) for m in payload.round_change_justification],
            [_item(m) for m in payload.prepare_justification],
        ]
    elif isinstance(payload, RoundChange):
        extras = [_opt(payload.prepared_block), [_item(m) for m in payload.prepares]]
    else:
        extras = []
    return [_kind(payload), _signed_fields(payload), signed.signature, extras]


def encode(signed: SignedMessage) -> bytes:
    """The wire form of ``signed``."""
    return rlpcodec.encode(_item(signed))


# --- decoding ------------------------------------------------------------------------


def _list(value: Any, what: str, *, size: int | None = None, max_size: int = MAX_JUSTIFICATION) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedMessage(f"{what}: list expected")
    if size is not None and len(value) != size:
        raise MalformedMessage(f"{what}: {len(value)} items, {size} expected")
    if len(value) > max_size:
        raise MalformedMessage(f"{what}: {len(value)} items, at most {max_size}")
    return value


def _bytes(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedMessage(f"{what}: byte string expected")
    if size is not None and len(value) != size:
        raise MalformedMessage(f"{what}: {len(value)} bytes, {size} expected")
    return value


def _uint(value: Any, what: str) -> int:
    data = _bytes(value, what)
    if len(data) > 8 or data[:1] == b"\x00":
        raise MalformedMessage(f"{what}: integers are below 2**64, without leading zeros")
    return int.from_bytes(data, "big")


def _optional(value: Any, what: str) -> Any | None:
    items = _list(value, what, max_size=1)
    return items[0] if items else None


def _message(item: Any, expected: frozenset[int], nested: bool) -> SignedMessage:
    """One ``[kind, fields, signature, extras]`` item; nested items carry no extras."""
    kind_b, fields, signature_b, extras = _list(item, "message", size=4)
    kind = _uint(kind_b, "kind")
    if kind not in expected:
        raise MalformedMessage(f"message kind {kind:#x} not allowed here")
    fields = _list(fields, "fields")
    signature = _bytes(signature_b, "signature", SIGNATURE_BYTES)
    payload: Payload
    if kind in (PREPARE, COMMIT):
        width = 3 if kind == PREPARE else 4
        _list(fields, "fields", size=width)
        _list(extras, "extras", size=0)
        height, round_ = _uint(fields[0], "height"), _uint(fields[1], "round")
        digest = _bytes(fields[2], "digest", DIGEST_BYTES)
        if kind == PREPARE:
            payload = Prepare(height, round_, digest)
        else:
            payload = Commit(height, round_, digest, _bytes(fields[3], "commit seal", SIGNATURE_BYTES))
    elif kind == ROUND_CHANGE:
        _list(fields, "fields", size=4)
        _list(extras, "extras", size=2)
        prepared_round_b = _optional(fields[2], "prepared round")
        prepared_digest_b = _optional(fields[3], "prepared digest")
        prepared_block_b = _optional(extras[0], "prepared block")
        prepares = tuple(_prepare(m) for m in _list(extras[1], "prepares"))
        if nested and (prepared_block_b is not None or prepares):
            raise MalformedMessage("a round change inside a proposal carries no block or prepares")
        payload = RoundChange(
            _uint(fields[0], "height"),
            _uint(fields[1], "round"),
            None if prepared_round_b is None else _uint(prepared_round_b, "prepared round"),
            None if prepared_digest_b is None else _bytes(prepared_digest_b, "prepared digest", DIGEST_BYTES),
            None if prepared_block_b is None else _bytes(prepared_block_b, "prepared block"),
            prepares,
        )
    else:
        _list(fields, "fields", size=3)
        _list(extras, "extras", size=2)
        round_changes = tuple(
            cast(Signed[RoundChange], _message(m, frozenset({ROUND_CHANGE}), nested=True))
            for m in _list(extras[0], "round-change justification")
        )
        prepares = tuple(_prepare(m) for m in _list(extras[1], "prepare justification"))
        payload = Proposal(
            _uint(fields[0], "height"),
            _uint(fields[1], "round"),
            _bytes(fields[2], "block"),
            round_changes,
            prepares,
        )
    return cast(SignedMessage, Signed(payload, signature, recover_signer(signing_hash(payload), signature)))


def _prepare(item: Any) -> Signed[Prepare]:
    return cast(Signed[Prepare], _message(item, frozenset({PREPARE}), nested=True))


_TOP_LEVEL = frozenset({PROPOSAL, PREPARE, COMMIT, ROUND_CHANGE})


def decode(data: bytes) -> SignedMessage:
    """The signed message in ``data``, with its sender recovered from the signature.

    Checks form and signature only; whether the message counts (sender a validator,
    right proposer, justification) is the machine's business.

    Raises:
        OversizedMessage: ``data`` is longer than :data:`MAX_MESSAGE_BYTES`.
        MalformedMessage: not canonical RLP of a message of a known kind with
            exact field widths, integers below 2**64 and bounded lists.
        BadSignature: a signature (of the message or a nested one) is malformed
            or recovers no key.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage("bytes expected")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise OversizedMessage(len(data), MAX_MESSAGE_BYTES)
    try:
        item = rlpcodec.decode(data)
    except rlpcodec.RlpError as exc:
        raise MalformedMessage("not canonical RLP") from exc
    return _message(item, _TOP_LEVEL, nested=False)
