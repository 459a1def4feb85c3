"""The devnet scenario: the whole path of a key, end to end, with attacks.

A Trusted Authority deploys the registry and onboards RSUs and vehicles; each
vehicle runs a QKD session with an RSU (a configurable share of links under
intercept-resend); agreed keys fill both key pools; vehicles send one-time-pad
messages that RSUs check and decrypt. Along the way: a ciphertext tampered in
transit, a replayed message, an attempt to reuse pad bits on chain, a vehicle that
signs envelopes naming another vehicle as sender to burn that link's pad (refused,
nothing burned, the genuine next message delivered), and a vehicle revoked mid-run
whose held-back message and new writes are refused. Seeded and reproducible; every
figure comes from the run.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from node.client.chain import Chain
from node.client.registry import KeyRegistry
from node.errors import ContractRevert
from node.metrics import Percentiles
from node.types import SessionId, TxResult
from qkd.bb84 import Eve, EveConfig
from qkd.channel import fibre
from qkd.session import SessionConfig
from vehicles import mac
from vehicles.agent import Agent, Role, onboard
from vehicles.envelope import Envelope, MessageHeader
from vehicles.errors import MessageRefused
from vehicles.ibc import TrustedAuthority, sign
from vehicles.ibc.curve import SeededRng
from vehicles.keysession import KeySessionReport, establish_key
from vehicles.messaging import pad_bits_for

MAX_SESSIONS_PER_LINK = 4


class ScenarioConfigError(ValueError):
    """A scenario option is out of range."""


@dataclass(frozen=True)
class ScenarioConfig:
    vehicles: int = 6
    rsus: int = 2
    eve_share: float = 0.25
    messages: int = 2
    message_bytes: int = 32
    pulses: int | None = None  # per QKD session; None: sized from the finite-key bound
    distance_km: float = 10.0
    seed: int = 0
    ttl_s: int = 3600

    def __post_init__(self) -> None:
        if self.vehicles < 3:
            raise ScenarioConfigError("need at least 3 vehicles (one is revoked, one link is tapped)")
        if self.rsus < 1:
            raise ScenarioConfigError("need at least one RSU")
        if not 0 <= self.eve_share < 1:
            raise ScenarioConfigError("eve share must be in [0, 1)")
        if self.messages < 1 or self.message_bytes < 1:
            raise ScenarioConfigError("messages and message bytes must be positive")
        if self.pulses is not None and self.pulses < 10_000:
            raise ScenarioConfigError("at least 10,000 pulses per session")


@dataclass(frozen=True)
class TxRecord:
    function: str
    latency_ms: float
    gas_used: int


@dataclass(frozen=True)
class AttackResult:
    attack: str
    expected: str
    observed: str

    @property
    def caught(self) -> bool:
        return self.expected == self.observed


@dataclass
class ScenarioReport:
    chain: str
    registry: str
    config: ScenarioConfig
    transactions: list[TxRecord] = field(default_factory=list)
    sessions: list[KeySessionReport] = field(default_factory=list)
    delivered: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    attacks: list[AttackResult] = field(default_factory=list)
    key_bits_consumed: int = 0
    wall_time_s: float = 0.0

    def latency(self) -> Percentiles:
        return Percentiles.of([t.latency_ms for t in self.transactions])

    def session_counts(self) -> dict[str, int]:
        counts = Counter(s.outcome for s in self.sessions)
        return {"run": len(self.sessions), **{k: counts.get(k, 0) for k in ("agreed", "aborted", "mismatch")}}

    @property
    def key_bits_produced(self) -> int:
        return sum(s.key_bits for s in self.sessions)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "registry": self.registry,
            "config": asdict(self.config),
            "wall_time_s": round(self.wall_time_s, 3),
            "transactions": len(self.transactions),
            "latency_ms": self.latency().to_json(),
            "sessions": self.session_counts(),
            "abort_reasons": dict(Counter(s.abort_reason for s in self.sessions if s.outcome == "aborted")),
            "session_qber": [
                {"initiator": s.initiator, "peer": s.peer, "outcome": s.outcome, "qber": round(s.record.qber, 4)}
                for s in self.sessions
            ],
            "messages": {"delivered": self.delivered, "refused": dict(self.refused)},
            "attacks": [{**asdict(a), "caught": a.caught} for a in self.attacks],
            "key_bits": {"produced": self.key_bits_produced, "consumed": self.key_bits_consumed},
        }


class _Clock:
    """Deterministic milliseconds: every reading advances the clock by 5 ms."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        self.now += 5
        return self.now


def devnet_account(seed: int, label: str) -> LocalAccount:
    """The deterministic account of ``label`` (``"ta"``, a vehicle, an RSU) in the run with ``seed``."""
    acct: LocalAccount = Account.from_key(keccak(text=f"qkdchain-devnet:{seed}:{label}"))
    return acct


def pad_burning_forgery(
    forger: Agent, sender: str, session_id: bytes, now_ms: int, offset: int | None = None, bits: int | None = None
) -> Envelope:
    """An envelope signed with ``forger``'s own valid credential that names ``sender`` as
    its sender and claims pad bits of ``session_id``: from ``offset`` (default: the next
    unused one on chain), ``bits`` of them rounded down to a whole message (default: all
    the key has left). Consistent in itself (ciphertext hash and size match the header),
    so only the receiver's checks against the chain stand between it and the pool.
    Before the header was signed whole, one such envelope burned a link's whole pad.
    """
    session = forger.registry.get_session(SessionId(session_id))
    start = session.consumed_bits if offset is None else offset
    claim = session.key_bits - start if bits is None else bits
    ciphertext = bytes(max(1, (claim - mac.KEY_BITS) // 8))
    header = MessageHeader(
        sender,
        session_id,
        start,
        pad_bits_for(ciphertext),
        bytes(mac.TAG_BYTES),
        keccak(ciphertext),
        forger.registry.w3.eth.block_number,
    )
    return Envelope(sign(forger.credential, header.encode(), now_ms, forger.rng), ciphertext)


def run_scenario(
    chain: Chain,
    config: ScenarioConfig | None = None,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    endpoints: Sequence[Web3] = (),
) -> ScenarioReport:
    """Run the scenario on ``chain``; key pools live under ``data_dir`` (a temp dir by default).

    ``endpoints``: other nodes of the same chain; RSUs and vehicles are spread over them
    round-robin (a validator network), while the TA and the faucet use ``chain``.
    """
    if data_dir is None:  # the agents' key pools are secret: a temp dir of our own goes when the run ends
        with tempfile.TemporaryDirectory(prefix="qkdchain-devnet-") as temp:
            return run_scenario(chain, config, Path(temp), progress, endpoints)
    config = config or ScenarioConfig()
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    ibc_rng = SeededRng(config.seed)
    clock = _Clock()

    def account(label: str) -> LocalAccount:
        return devnet_account(config.seed, label)

    say(f"TA deploys the KeyRegistry on {chain.name}")
    ta_account = account("ta")
    chain.fund(ta_account.address, 10**20)
    ta_registry = KeyRegistry.deploy(chain.w3, ta_account)
    report = ScenarioReport(chain.name, ta_registry.address, config)

    def note(function: str, result: TxResult) -> None:
        report.transactions.append(TxRecord(function, result.latency_ms, result.gas_used))

    assert ta_registry.deployment is not None
    note("deploy", ta_registry.deployment)
    ta = TrustedAuthority(rng=ibc_rng)

    say(f"onboarding {config.rsus} RSUs and {config.vehicles} vehicles")
    nodes = list(endpoints) or [chain.w3]

    def join(index: int, name: str, role: Role) -> Agent:  # agents spread over the nodes round-robin
        node = nodes[index % len(nodes)]
        return onboard(name, role, account(name), ta, ta_registry, chain, data_dir, clock, ibc_rng, note, node)

    rsus = [join(j, f"rsu{j}", "rsu") for j in range(config.rsus)]
    vehicles = [join(config.rsus + i, f"vehicle{i}", "vehicle") for i in range(config.vehicles)]

    tapped_count = math.ceil(config.eve_share * config.vehicles)
    tapped = set(rng.choice(config.vehicles, tapped_count, replace=False).tolist()) if tapped_count else set()
    # Pad bits each link needs: its messages plus the attacks' extra ones.
    need = (config.messages + 2) * pad_bits_for(bytes(config.message_bytes))
    links: list[tuple[Agent, Agent]] = []
    for i, vehicle in enumerate(vehicles):
        rsu = rsus[i % config.rsus]
        eve = EveConfig(Eve.INTERCEPT_RESEND, 1.0) if i in tapped else EveConfig()
        for attempt in range(MAX_SESSIONS_PER_LINK):
            qkd_config = SessionConfig(
                pulses=config.pulses,
                channel=fibre(config.distance_km),
                eve=eve,
                target_bits=need,
                seed=(config.seed * 100_003 + i) * 16 + attempt,
            )
            say(f"QKD {vehicle.name} <-> {rsu.name}" + (" (tapped)" if i in tapped else ""))
            session_id = keccak(text=f"qkd-session:{config.seed}:{vehicle.name}:{rsu.name}:{attempt}")
            outcome = establish_key(vehicle, rsu, qkd_config, session_id, config.ttl_s, note)
            report.sessions.append(outcome)
            if outcome.outcome == "aborted" and outcome.abort_reason == "qber_above_threshold":
                break  # an eavesdropper on this link: do not feed her more pulses
            if vehicle.pool.unused_bits(rsu.name) >= need:
                links.append((vehicle, rsu))
                break
    if len(links) < 2:
        raise ScenarioConfigError("fewer than two agreed links: raise pulses or lower the eve share")

    def deliver(envelope: Envelope, receiver: Agent) -> str:
        try:
            receiver.receive(envelope)
        except MessageRefused as exc:
            report.refused[exc.reason] += 1
            return exc.reason
        report.delivered += 1
        return "delivered"

    def send(vehicle: Agent, rsu: Agent) -> Envelope:
        plaintext = rng.integers(0, 256, config.message_bytes, dtype=np.uint8).tobytes()
        envelope, recorded = vehicle.send(rsu.name, plaintext, clock())
        report.key_bits_consumed += envelope.header.bits
        note("recordMessage", recorded)
        return envelope

    # Hold one message back: the revoked vehicle's, sealed before its revocation.
    revoked_vehicle, revoked_rsu = links[-1]
    held_back = send(revoked_vehicle, revoked_rsu)

    say("messaging")
    first_envelope: Envelope | None = None
    for vehicle, rsu in links:
        for _ in range(config.messages):
            envelope = send(vehicle, rsu)
            deliver(envelope, rsu)
            first_envelope = first_envelope or envelope

    say("attacks: tampering, replay, pad reuse, revocation")
    attacker, victim = links[0]
    envelope = send(attacker, victim)
    tampered = replace(envelope, ciphertext=bytes([envelope.ciphertext[0] ^ 0x01]) + envelope.ciphertext[1:])
    report.attacks.append(
        AttackResult("ciphertext tampered in transit", "ciphertext_mismatch", deliver(tampered, victim))
    )

    assert first_envelope is not None
    report.attacks.append(AttackResult("delivered message replayed", "replayed", deliver(first_envelope, links[0][1])))

    try:
        attacker.registry.record_message(SessionId(first_envelope.header.session_id), keccak(text="reuse"), 0, 64)
        observed = "accepted"
    except ContractRevert as exc:
        observed = f"contract:{type(exc).__name__}"
        report.refused[observed] += 1
    report.attacks.append(AttackResult("record pad bits at an used offset", "contract:PadOffsetMismatch", observed))

    forger = links[1][0]  # a vehicle with a valid credential and a link of its own
    unused = victim.pool.unused_bits(attacker.name)
    forged = pad_burning_forgery(forger, attacker.name, envelope.header.session_id, clock())
    observed = deliver(forged, victim)
    burned = unused - victim.pool.unused_bits(attacker.name)
    observed += f", {burned} pad bits burned" if burned else ""
    report.attacks.append(
        AttackResult("another vehicle named as sender, its unused pad claimed", "sender_not_party", observed)
    )
    after = deliver(send(attacker, victim), victim)
    report.attacks.append(AttackResult("genuine message after the forgery", "delivered", after))

    note("revokeIdentity", ta_registry.revoke_identity(revoked_vehicle.pseudonym_id, "devnet: compromised"))
    report.attacks.append(
        AttackResult("message from a vehicle revoked since", "revoked", deliver(held_back, revoked_rsu))
    )
    try:
        send(revoked_vehicle, revoked_rsu)
        observed = "accepted"
    except ContractRevert as exc:
        observed = f"contract:{type(exc).__name__}"
        report.refused[observed] += 1
    report.attacks.append(AttackResult("revoked vehicle records a message", "contract:AccountRevoked", observed))

    report.wall_time_s = time.perf_counter() - started
    return report


def run_on_network(
    config: ScenarioConfig,
    validators: int,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    round_timeout_s: float = 2.0,
) -> ScenarioReport:
    """Run the scenario on a local QBFT network of ``validators`` node processes.

    The RSUs are validators (the registry's validator role is the consensus validator
    set), so validator node i runs with RSU i's key and the TA is the genesis admin:
    onboarding an RSU names a validator that is already there and the set stays as the
    genesis has it. RSUs and vehicles are spread over the nodes' endpoints.

    Raises:
        ScenarioConfigError: more RSUs than validators (an RSU without a node would join
            the validator set and could cost the network its quorum).
    """
    from web3 import HTTPProvider

    from node.client.chain import RpcChain
    from node.launcher import LocalNetwork, plan_network

    if config.rsus > validators:
        raise ScenarioConfigError(f"--rsus {config.rsus} exceeds --validators {validators}: every RSU runs a node")
    directory = Path(tempfile.mkdtemp(prefix="qkdchain-devnet-network-"))
    keys = {f"validator-{i}": bytes(devnet_account(config.seed, f"rsu{i}").key) for i in range(validators)}
    specs = plan_network(
        directory, validators, admin=devnet_account(config.seed, "ta").address, permissioned=True, given_keys=keys
    )
    (progress or (lambda _m: None))(f"starting {validators} validator processes in {directory}")
    with LocalNetwork(directory, specs, round_timeout_s).up() as network:
        chain = RpcChain(specs[0].url, name=f"network-{validators}")
        endpoints = [Web3(HTTPProvider(s.url, request_kwargs={"timeout": 60})) for s in network.specs]
        report = run_scenario(chain, config, data_dir, progress, endpoints)
    shutil.rmtree(directory, ignore_errors=True)  # the nodes' logs stay only when the run failed
    return report
