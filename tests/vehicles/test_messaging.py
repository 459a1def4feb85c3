"""One-time-pad envelopes under hostile senders, on every chain we support (issue #11).

A forged or altered envelope must be refused by a named check *before* the receiver
takes pad bits: the receiver's pool stays exactly as it was, and the genuine envelope
(or the genuine next one) is still accepted afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from node.client.chain import Chain
from node.client.registry import KeyRegistry
from node.types import PseudonymId, SessionId
from qkd.session import SessionConfig
from vehicles import mac
from vehicles.agent import Agent, Role, onboard
from vehicles.envelope import DOMAIN, VERSION, Envelope, MessageHeader
from vehicles.errors import (
    BadSignature,
    CiphertextMismatch,
    MacInvalid,
    MalformedEnvelope,
    MessageRefused,
    PadUnavailable,
    ReplayedEnvelope,
    SenderNotSessionParty,
    SignerRevoked,
    UnknownSigner,
    UnrecordedEnvelope,
    UnsupportedEnvelopeVersion,
)
from vehicles.ibc import RevocationList, TrustedAuthority, Verifier, sign
from vehicles.ibc.curve import SeededRng
from vehicles.keysession import establish_key
from vehicles.messaging import open_envelope, pad_bits_for
from vehicles.scenario import pad_burning_forgery

TEXT = b"brake!"  # 6 bytes: 304 pad bits a message


@dataclass
class Registry:
    """A TA's freshly deployed registry on ``chain``, and how agents join it."""

    chain: Chain
    registry: KeyRegistry
    ta: TrustedAuthority
    clock: Callable[[], int]
    rng: SeededRng
    pool_dir: Path

    def join(self, name: str, role: Role) -> Agent:
        account = Account.from_key(_key(self.chain, name))
        return onboard(name, role, account, self.ta, self.registry, self.chain, self.pool_dir, self.clock, self.rng)

    def link(self, vehicle: Agent, rsu: Agent, seed: int, target_bits: int) -> bytes:
        """Run QKD between ``vehicle`` and ``rsu``, commit it on chain; returns the session id."""
        session_id = keccak(text=f"messaging:{os.getpid()}:{vehicle.name}")
        config = SessionConfig(seed=seed, target_bits=target_bits)
        assert establish_key(vehicle, rsu, config, session_id, 3600).outcome == "agreed"
        return session_id


@dataclass
class World:
    """``car`` and ``mallory``, two vehicles with valid credentials, each share an agreed
    key with ``rsu``."""

    on: Registry
    car: Agent
    mallory: Agent
    rsu: Agent
    car_session: bytes
    mallory_session: bytes

    @property
    def registry(self) -> KeyRegistry:
        return self.on.registry

    def clock(self) -> int:
        return self.on.clock()

    def unused(self) -> dict[str, int]:
        """The receiver's unused pad bits with each sender: equal before and after means untouched."""
        return {peer: self.rsu.pool.unused_bits(peer) for peer in ("car", "mallory")}


def _key(chain: Chain, label: str) -> bytes:
    # distinct per test process, so that reruns against a long-lived chain start afresh
    return keccak(text=f"qkdchain-test:{os.getpid()}:{chain.name}:messaging:{label}")


@pytest.fixture(scope="module")
def world(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> World:
    ta_account = Account.from_key(_key(chain, "ta"))
    chain.fund(ta_account.address, 10**20)
    rng = SeededRng(11)
    registry = KeyRegistry.deploy(chain.w3, ta_account)
    clock = itertools.count(1_800_000_000_000).__next__
    on = Registry(chain, registry, TrustedAuthority(rng=rng), clock, rng, tmp_path_factory.mktemp("pools"))
    rsu, car, mallory = on.join("rsu", "rsu"), on.join("car", "vehicle"), on.join("mallory", "vehicle")
    car_session = on.link(car, rsu, seed=21, target_bits=8192)
    mallory_session = on.link(mallory, rsu, seed=22, target_bits=2048)
    return World(on, car, mallory, rsu, car_session, mallory_session)


def _send(world: World, sender: Agent, text: bytes = TEXT) -> Envelope:
    envelope, _ = sender.send("rsu", text, world.clock())
    return envelope


def _refused(world: World, envelope: Envelope, expected: type[MessageRefused]) -> MessageRefused:
    before = world.unused()
    with pytest.raises(expected) as info:
        world.rsu.receive(envelope)
    assert world.unused() == before, "a refused envelope burned pad bits"
    return info.value


# ---- the pad-burning forgery --------------------------------------------------


def test_genuine_message_is_opened_and_spends_exactly_its_bits(world: World) -> None:
    before = world.unused()
    envelope = _send(world, world.car)
    assert envelope.header.sender == "car" and envelope.header.session_id == world.car_session
    assert world.rsu.receive(envelope) == TEXT
    assert world.unused() == {**before, "car": before["car"] - pad_bits_for(TEXT)}


@pytest.mark.parametrize("offset", ["next", "zero", "middle"])
def test_forged_sender_burns_nothing_and_the_genuine_next_message_is_accepted(world: World, offset: str) -> None:
    """Mallory, a vehicle with a valid credential, names ``car`` as sender and claims
    all of car's unused pad at an offset of her choice (once: 8,192 of 8,192 bits burned)."""
    session = world.registry.get_session(SessionId(world.car_session))
    start = {"next": session.consumed_bits, "zero": 0, "middle": (session.consumed_bits + session.key_bits) // 2}
    forged = pad_burning_forgery(world.mallory, "car", world.car_session, world.clock(), start[offset])
    assert forged.header.offset + forged.header.bits > session.key_bits - 8  # the whole rest of the pad

    refusal = _refused(world, forged, SenderNotSessionParty)
    assert isinstance(refusal, SenderNotSessionParty)
    assert refusal.signer == world.mallory.address and set(refusal.parties) == {world.car.address, world.rsu.address}
    assert world.rsu.receive(_send(world, world.car)) == TEXT


def test_forgery_recorded_on_the_forgers_own_session_burns_nothing(world: World) -> None:
    """Mallory records bits of her own session on chain, then names ``car`` as sender:
    every on-chain check passes, and the pool shared with car has no such session."""
    genuine = _send(world, world.mallory)  # recorded by mallory, never delivered
    header = replace(genuine.header, sender="car")
    forged = Envelope(sign(world.mallory.credential, header.encode(), world.clock(), world.on.rng), genuine.ciphertext)
    _refused(world, forged, PadUnavailable)
    assert world.rsu.receive(_send(world, world.car)) == TEXT
    assert world.rsu.receive(_send(world, world.mallory)) == TEXT  # her skipped bits were spent on chain


# ---- every header field is signed and checked --------------------------------

FIELDS = ["sender", "session", "offset", "length", "tag", "ciphertext", "record_block"]
IN_TRANSIT, BY_THIRD_PARTY, BY_SENDER = "altered in transit", "re-signed by another vehicle", "re-signed by the sender"
EXPECTED: dict[tuple[str, str], type[MessageRefused]] = {
    **{(f, IN_TRANSIT): BadSignature for f in FIELDS},
    **{(f, BY_THIRD_PARTY): SenderNotSessionParty for f in FIELDS},
    ("session", BY_THIRD_PARTY): UnrecordedEnvelope,  # her own session: no record of car's ciphertext there
    ("sender", BY_SENDER): PadUnavailable,  # the chain agrees; the pool shared with "mallory" has no such session
    ("session", BY_SENDER): SenderNotSessionParty,
    **{(f, BY_SENDER): UnrecordedEnvelope for f in ("offset", "length", "ciphertext", "record_block")},
}


def _tamper(world: World, envelope: Envelope, field: str) -> tuple[MessageHeader, bytes]:
    """The header and ciphertext with ``field`` changed, consistent in themselves."""
    h, text = envelope.header, envelope.ciphertext
    if field == "sender":
        return replace(h, sender="mallory"), text
    if field == "session":
        return replace(h, session_id=world.mallory_session), text
    if field == "offset":
        return replace(h, offset=h.offset + 64), text
    if field == "length":  # claim more pad: a longer ciphertext with its own hash
        longer = text + bytes(32)
        return replace(h, bits=pad_bits_for(longer), ciphertext_hash=keccak(longer)), longer
    if field == "tag":
        return replace(h, tag=bytes(b ^ 0xFF for b in h.tag)), text
    if field == "ciphertext":
        other = bytes(b ^ 0xFF for b in text)
        return replace(h, ciphertext_hash=keccak(other)), other
    assert field == "record_block"
    return replace(h, record_block=h.record_block - 1), text


@pytest.mark.parametrize(("field", "who"), sorted(EXPECTED))
def test_tampered_header_is_refused_and_burns_nothing(world: World, field: str, who: str) -> None:
    genuine = _send(world, world.car)
    header, text = _tamper(world, genuine, field)
    if who == IN_TRANSIT:
        signed = replace(genuine.signed, message=header.encode())
    else:
        signer = world.mallory if who == BY_THIRD_PARTY else world.car
        signed = sign(signer.credential, header.encode(), world.clock(), world.on.rng)
    _refused(world, Envelope(signed, text), EXPECTED[field, who])
    assert world.rsu.receive(genuine) == TEXT  # and the genuine envelope is still good


def test_tampered_ciphertext_is_refused_and_the_genuine_envelope_still_accepted(world: World) -> None:
    genuine = _send(world, world.car)
    flipped = bytes([genuine.ciphertext[0] ^ 1]) + genuine.ciphertext[1:]
    _refused(world, replace(genuine, ciphertext=flipped), CiphertextMismatch)
    _refused(world, replace(genuine, ciphertext=genuine.ciphertext + b"\x00"), CiphertextMismatch)
    assert world.rsu.receive(genuine) == TEXT


def test_replayed_envelope_burns_nothing(world: World) -> None:
    genuine = _send(world, world.car)
    assert world.rsu.receive(genuine) == TEXT
    _refused(world, genuine, ReplayedEnvelope)


def test_only_the_signing_party_can_spend_bits_on_a_bad_tag(world: World) -> None:
    """A wrong tag gets past every check only when the session's other party signed and
    recorded it itself; then the bits are spent (it could spend them anyway)."""
    genuine = _send(world, world.car)
    header = replace(genuine.header, tag=bytes(mac.TAG_BYTES))
    own = Envelope(sign(world.car.credential, header.encode(), world.clock(), world.on.rng), genuine.ciphertext)
    before = world.unused()
    with pytest.raises(MacInvalid):
        world.rsu.receive(own)
    assert world.unused()["car"] == before["car"] - genuine.header.bits
    assert world.rsu.receive(_send(world, world.car)) == TEXT


def test_receiver_outside_the_session_refuses(world: World) -> None:
    envelope = _send(world, world.car)
    before = world.mallory.pool.unused_bits("rsu")
    with pytest.raises(SenderNotSessionParty):
        world.mallory.receive(envelope)
    assert world.mallory.pool.unused_bits("rsu") == before
    assert world.rsu.receive(envelope) == TEXT


def test_unregistered_pseudonym_is_refused(world: World) -> None:
    genuine = _send(world, world.car)
    stranger = world.on.ta.issue(keccak(text="never registered"))
    forged = Envelope(sign(stranger, genuine.signed.message, world.clock(), world.on.rng), genuine.ciphertext)
    _refused(world, forged, UnknownSigner)
    assert world.rsu.receive(genuine) == TEXT


def test_revoked_signer_is_refused_before_the_pool_is_touched(world: World) -> None:
    dave = world.on.join("dave", "vehicle")
    world.on.link(dave, world.rsu, seed=23, target_bits=1024)
    held_back = _send(world, dave)
    world.registry.revoke_identity(PseudonymId(dave.credential.pseudonym.pseudonym_id), "test: compromised")
    before = world.rsu.pool.unused_bits("dave")

    # a verifier whose revocation list never synced: the on-chain record refuses it
    unsynced = Verifier(world.on.ta.public_key, RevocationList(), clock_ms=world.clock)
    with pytest.raises(SignerRevoked):
        open_envelope(held_back, world.rsu.pool, world.rsu.registry, unsynced, world.rsu.address)
    # the agent's own path: the synced revocation list refuses it first
    with pytest.raises(SignerRevoked):
        world.rsu.receive(held_back)
    assert world.rsu.pool.unused_bits("dave") == before


# ---- the signed encoding ------------------------------------------------------

headers = st.builds(
    MessageHeader,
    sender=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=128),
    session_id=st.binary(min_size=32, max_size=32),
    offset=st.integers(0, 2**32 - 1),
    bits=st.integers(0, 2**32 - 1),
    tag=st.binary(min_size=16, max_size=16),
    ciphertext_hash=st.binary(min_size=32, max_size=32),
    record_block=st.integers(0, 2**64 - 1),
)


@given(headers)
def test_header_round_trips(header: MessageHeader) -> None:
    data = header.encode()
    assert data.startswith(DOMAIN + bytes([VERSION]))
    assert MessageHeader.decode(data) == header


@given(headers, st.binary(max_size=64), st.data())
def test_envelope_round_trips_and_a_cut_signed_part_is_malformed(
    header: MessageHeader, text: bytes, data: st.DataObject
) -> None:
    credential = TrustedAuthority(rng=SeededRng(1)).issue(bytes(32))
    envelope = Envelope(sign(credential, header.encode(), 1_800_000_000_000, SeededRng(2)), text)
    wire = envelope.encode()
    assert Envelope.decode(wire) == envelope
    cut = data.draw(st.integers(0, 4 + len(envelope.signed.encode()) - 1))
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(wire[:cut])


def test_version_1_and_foreign_headers_are_refused() -> None:
    credential = TrustedAuthority(rng=SeededRng(1)).issue(bytes(32))
    v1 = bytes(32) + (0).to_bytes(4, "big") + (320).to_bytes(4, "big") + bytes(16)  # session|offset|bits|tag

    def envelope(message: bytes) -> Envelope:
        return Envelope(sign(credential, message, 1_800_000_000_000, SeededRng(2)), b"x")

    with pytest.raises(UnsupportedEnvelopeVersion) as info:
        envelope(v1)
    assert info.value.version == 1
    current = MessageHeader("car", bytes(32), 0, 264, bytes(16), keccak(b"x"), 1).encode()
    with pytest.raises(UnsupportedEnvelopeVersion):
        envelope(DOMAIN + b"\x03" + current[len(DOMAIN) + 1 :])
    for broken in (b"hello", current[:-1], current + b"!", DOMAIN + b"\x02"):
        with pytest.raises(MalformedEnvelope):
            envelope(broken)
