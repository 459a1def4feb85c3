"""One-time-pad messages: sealing by the sender, opening by the receiver.

``C = M xor K`` with pad bits never used before, a Wegman-Carter tag over ``C`` from
the next 256 pool bits, an on-chain ``recordMessage`` that makes the pad consumption
auditable, and an IBC signature over the header (:mod:`vehicles.envelope`) that
names every field the receiver acts on.

The receiver takes pad bits only for an envelope that the chain shows was sent, by
the signer, on those very bits. Before it touches the pool it checks, in order:

1. the ciphertext is the one the signed header names (hash and size; stateless, so
   a ciphertext altered in transit cannot spend the genuine envelope's replay entry);
2. the pseudonym signature, freshness, the synced revocation list and replay;
3. the signer's pseudonym on chain: registered, and not revoked;
4. the session on chain: the signer and the receiver are its two parties;
5. a ``MessageRecorded`` by the signer with the header's session, offset, length and
   ciphertext hash (the chain only records at the session's next unused offset and
   within its key, so these are exactly the bits the sender was given).

Only then are the bits taken (the pool refuses, without writing, bits behind its
cursor or past the key's end, or a session not shared with the named sender) and the
MAC checked. Every refusal is a :class:`vehicles.errors.MessageRefused` subclass; all
but :class:`MacInvalid` leave the pool untouched, and a MAC failure needs an envelope
that the session's other party signed and recorded itself.
"""

from __future__ import annotations

import numpy as np
from eth_utils.crypto import keccak

from node.client.registry import KeyRegistry
from node.types import PseudonymId, SessionId, SessionState, TxResult
from qkd.errors import ConfigError, KeyPoolExhausted, PadReused
from qkd.keypool import KeyPool, PadSlice
from vehicles import mac
from vehicles.envelope import Envelope, MessageHeader
from vehicles.errors import (
    BadSignature,
    CiphertextMismatch,
    EmptyMessage,
    FutureEnvelope,
    FutureTimestamp,
    MacInvalid,
    MalformedEnvelope,
    MessageRefused,
    PadAlreadyUsed,
    PadUnavailable,
    ReplayedEnvelope,
    ReplayedMessage,
    RevokedPseudonym,
    SenderNotSessionParty,
    SignerRevoked,
    StaleEnvelope,
    StaleTimestamp,
    UnknownSession,
    UnknownSigner,
    UnrecordedEnvelope,
    VerificationError,
)
from vehicles.ibc import Credential, SignedMessage, Verifier, sign
from vehicles.ibc.curve import RandomSource

_VERIFIER_REFUSALS: dict[type[VerificationError], type[MessageRefused]] = {
    StaleTimestamp: StaleEnvelope,
    FutureTimestamp: FutureEnvelope,
    ReplayedMessage: ReplayedEnvelope,
}


def pad_bits_for(plaintext: bytes) -> int:
    return 8 * len(plaintext) + mac.KEY_BITS


def seal(
    sender: str,
    peer: str,
    plaintext: bytes,
    pool: KeyPool,
    registry: KeyRegistry,
    credential: Credential,
    now_ms: int,
    rng: RandomSource | None = None,
) -> tuple[Envelope, TxResult]:
    """Encrypt, authenticate, record on chain and sign ``plaintext`` for ``peer``.

    ``sender`` is this agent's name in the receiver's pool. Returns the envelope to
    deliver and the ``recordMessage`` transaction.

    Raises:
        EmptyMessage: ``plaintext`` is empty.
        KeyPoolExhausted: not enough unused key bits shared with ``peer``.
        node.errors.ContractRevert: the chain refused the record (e.g. ``AccountRevoked``).
    """
    if not plaintext:
        raise EmptyMessage("empty message")
    pad = pool.take(peer, pad_bits_for(plaintext))
    text_bits = 8 * len(plaintext)
    ciphertext = _xor(plaintext, pad.bits[:text_bits])
    tag = mac.tag(pad.bits[text_bits:], ciphertext)
    digest = keccak(ciphertext)
    result = registry.record_message(SessionId(pad.session_id), digest, pad.offset, pad.bits.size)
    header = MessageHeader(sender, pad.session_id, pad.offset, pad.bits.size, tag, digest, result.block_number)
    return Envelope(sign(credential, header.encode(), now_ms, rng), ciphertext), result


def open_envelope(envelope: Envelope, pool: KeyPool, registry: KeyRegistry, verifier: Verifier, receiver: str) -> bytes:
    """Check ``envelope`` (for the agent whose account is ``receiver``) and return the plaintext.

    Raises:
        MessageRefused: a subclass naming the first check that failed (see the module
            docstring for the order). Only :class:`MacInvalid` comes after pad bits
            were taken.
        node.errors.NodeError: the chain could not be read (the pool is untouched).
    """
    header = envelope.header
    _check_ciphertext(envelope)
    _check_signature(envelope.signed, verifier)
    signer = _signer_account(envelope.signed, registry)
    _check_parties(header, signer, receiver, registry)
    _check_recorded(header, signer, registry)
    try:
        verifier.remember(envelope.signed)
    except ReplayedMessage as exc:
        raise ReplayedEnvelope(str(exc)) from exc
    pad = _take(pool, header)
    text_bits = 8 * len(envelope.ciphertext)
    if not mac.verify(pad.bits[text_bits:], envelope.ciphertext, header.tag):
        end = pad.offset + pad.bits.size
        raise MacInvalid(f"the Wegman-Carter tag does not match; pad bits [{pad.offset}, {end}) are spent")
    return _xor(envelope.ciphertext, pad.bits[:text_bits])


def _check_ciphertext(envelope: Envelope) -> None:
    header = envelope.header
    if not envelope.ciphertext:
        raise MalformedEnvelope("empty ciphertext")
    if keccak(envelope.ciphertext) != header.ciphertext_hash:
        raise CiphertextMismatch("the ciphertext does not hash to the signed ciphertext hash")
    if header.bits != pad_bits_for(envelope.ciphertext):
        raise CiphertextMismatch(
            f"{len(envelope.ciphertext)} ciphertext bytes need {pad_bits_for(envelope.ciphertext)} pad bits,"
            f" the header claims {header.bits}"
        )


def _check_signature(signed: SignedMessage, verifier: Verifier) -> None:
    try:
        verifier.verify(signed, remember=False)
    except RevokedPseudonym as exc:
        raise SignerRevoked(exc.pseudonym_id) from exc
    except VerificationError as exc:
        raise _VERIFIER_REFUSALS.get(type(exc), BadSignature)(str(exc)) from exc


def _signer_account(signed: SignedMessage, registry: KeyRegistry) -> str:
    """The account the signer's pseudonym is registered to; the chain's word on revocation."""
    pseudonym_id = signed.pseudonym.pseudonym_id
    identity = registry.get_identity(PseudonymId(pseudonym_id))
    if not identity.exists:
        raise UnknownSigner(pseudonym_id)
    if identity.revoked:  # the revocation list may not have seen the latest block yet
        raise SignerRevoked(pseudonym_id)
    return identity.account


def _check_parties(header: MessageHeader, signer: str, receiver: str, registry: KeyRegistry) -> None:
    session = registry.get_session(SessionId(header.session_id))
    if session.state is SessionState.NONE:
        raise UnknownSession(header.session_id)
    parties = (session.initiator, session.peer)
    lowered = {p.lower() for p in parties}
    if signer.lower() == receiver.lower() or {signer.lower(), receiver.lower()} != lowered:
        raise SenderNotSessionParty(header.session_id, signer, receiver, parties)


def _check_recorded(header: MessageHeader, signer: str, registry: KeyRegistry) -> None:
    def refuse(why: str) -> UnrecordedEnvelope:
        return UnrecordedEnvelope(header.session_id, header.offset, header.bits, header.record_block, why)

    if header.record_block > registry.w3.eth.block_number:
        raise refuse("the chain has not reached that block")
    for event in registry.events("MessageRecorded", from_block=header.record_block, to_block=header.record_block):
        a = event.args
        if (
            a["sessionId"] == header.session_id
            and str(a["sender"]).lower() == signer.lower()
            and a["ciphertextHash"] == header.ciphertext_hash
            and a["offset"] == header.offset
            and a["bits"] == header.bits
        ):
            return
    raise refuse("no MessageRecorded by the signer with this session, offset, length and ciphertext hash")


def _take(pool: KeyPool, header: MessageHeader) -> PadSlice:
    """The header's bits from the pool shared with its sender; every refusal writes nothing."""
    try:
        return pool.take_at(header.sender, header.session_id, header.offset, header.bits)
    except PadReused as exc:
        raise PadAlreadyUsed(header.session_id, header.offset, exc.cursor) from exc
    except KeyPoolExhausted as exc:
        raise PadUnavailable(header.sender, header.session_id, header.offset, header.bits) from exc
    except ConfigError as exc:  # a sender name the pool cannot hold, or zero bits
        raise MalformedEnvelope(str(exc)) from exc


def _xor(data: bytes, bits: np.ndarray) -> bytes:
    return (np.frombuffer(data, dtype=np.uint8) ^ np.packbits(bits.astype(np.uint8))).tobytes()
