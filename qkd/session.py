"""One QKD session between Alice and Bob, stage by stage.

``reconcile`` runs the quantum phase, sifting, parameter estimation, the
single-photon bound, Cascade and error verification over a classical channel, and
returns both *reconciled* blocks with the leakage budget: the caller commits
``commitment(session_id, block)`` on chain at this point. ``amplify`` then
compresses a reconciled block to the final key. ``run_session`` does both.

An abort is not an exception to the caller of ``run_session``: the record carries
``aborted`` and a named ``abort_reason``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qkd.amplification import toeplitz_hash, toeplitz_seed
from qkd.bb84 import DECOY, SIGNAL, VACUUM, EveConfig, SourceConfig, Transmission, transmit
from qkd.cascade import DEFAULT_PASSES, cascade
from qkd.channel import ChannelModel, fibre
from qkd.classical import (
    ClassicalChannel,
    InMemoryChannel,
    ParityReply,
    ParityRequest,
    Reply,
    Request,
    RevealReply,
    RevealRequest,
    SiftReply,
    SiftRequest,
    VerifyReply,
    VerifyRequest,
)
from qkd.decoy import SinglePhotonBound, decoy_bound, gllp_bound
from qkd.errors import ConfigError, QkdError, ReconciliationError, SessionAborted
from qkd.estimation import binary_entropy, qber_upper_bound, sample_positions
from qkd.leakage import LeakBudget
from qkd.verification import commitment

MIN_SIFTED_BITS = 200
GROUPS = {"signal": SIGNAL, "decoy": DECOY, "vacuum": VACUUM}


@dataclass(frozen=True)
class SessionConfig:
    pulses: int = 4_000_000
    channel: ChannelModel = field(default_factory=lambda: fibre(10.0))
    source: SourceConfig = field(default_factory=SourceConfig)
    eve: EveConfig = field(default_factory=EveConfig)
    qber_threshold: float = 0.11
    sample_fraction: float = 0.1
    eps_pe: float = 1e-10
    eps_pa: float = 1e-10
    cascade_passes: int = DEFAULT_PASSES
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.pulses <= 0:
            raise ConfigError("pulses must be positive")
        if not 0 < self.qber_threshold < 0.5:
            raise ConfigError("qber threshold must be in (0, 0.5)")
        if not 0 < self.sample_fraction < 1:
            raise ConfigError("sample fraction must be in (0, 1)")
        if not (0 < self.eps_pe < 1 and 0 < self.eps_pa < 1):
            raise ConfigError("security parameters must be in (0, 1)")


@dataclass(frozen=True)
class SessionRecord:
    """Everything measured about one session (JSON-ready through ``to_json``)."""

    session_id: str
    pulses: int
    detections: int = 0
    sifted_bits: int = 0
    sample_bits: int = 0
    qber: float = 0.0
    qber_upper: float = 0.0
    true_qber: float = 0.0
    single_photon_fraction: float = 0.0
    e1_upper: float = 0.0
    single_photon_method: str = ""
    reconciled_bits: int = 0
    errors_corrected: int = 0
    leak_ec_bits: int = 0
    efficiency: float = 0.0
    verification_bits: int = 0
    leak_terms: dict[str, float | int] = field(default_factory=dict)
    final_bits: int = 0
    aborted: bool = False
    abort_reason: str | None = None
    abort_detail: str | None = None
    time_ms: dict[str, float] = field(default_factory=dict)
    channel: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AliceEndpoint:
    """Alice's side of post-processing; she holds only her own data."""

    def __init__(self, alice_bits: np.ndarray, alice_bases: np.ndarray, intensity: np.ndarray, session_id: bytes):
        self._bits = alice_bits
        self._bases = alice_bases
        self._intensity = intensity
        self._session_id = session_id
        self._groups: dict[str, np.ndarray] = {}
        self.key: np.ndarray = np.zeros(0, dtype=np.uint8)
        self.verified = False

    def handle(self, request: Request) -> Reply:
        if isinstance(request, SiftRequest):
            clicks = np.flatnonzero(request.detected)
            if clicks.size != request.bases.size:
                raise QkdError("sift request: one basis per click expected")
            match = self._bases[clicks] == request.bases
            labels = self._intensity[clicks]
            matched = clicks[match]
            self._groups = {g: matched[labels[match] == level] for g, level in GROUPS.items()}
            self.key = self._bits[self._groups["signal"]]
            return SiftReply(match, labels)
        if isinstance(request, RevealRequest):
            if request.group == "sample":
                bits = self.key[request.positions]
                keep = np.ones(self.key.size, dtype=bool)
                keep[request.positions] = False
                self.key = self.key[keep]
                return RevealReply(bits)
            return RevealReply(self._bits[self._groups[request.group][request.positions]])
        if isinstance(request, ParityRequest):
            return ParityReply(np.array([int(self.key[s].sum()) & 1 for s in request.index_sets], dtype=np.uint8))
        if isinstance(request, VerifyRequest):
            mine = commitment(self._session_id, self.key)
            self.verified = mine == request.digest
            return VerifyReply(mine)
        raise QkdError(f"unexpected request {type(request).__name__}")


class _ChannelParities:
    def __init__(self, channel: ClassicalChannel) -> None:
        self._channel = channel

    def parities(self, index_sets: Sequence[np.ndarray]) -> np.ndarray:
        reply = self._channel.exchange(ParityRequest(tuple(index_sets)))
        assert isinstance(reply, ParityReply)
        return reply.parities


@dataclass(frozen=True)
class Reconciled:
    """Both reconciled blocks (equal unless verification failed) and the public budget."""

    session_id: bytes
    alice_block: np.ndarray
    bob_block: np.ndarray
    budget: LeakBudget
    record: SessionRecord


@dataclass(frozen=True)
class SessionOutcome:
    record: SessionRecord
    alice_key: np.ndarray | None
    bob_key: np.ndarray | None
    reconciled: Reconciled | None


class _Stages:
    def __init__(self) -> None:
        self.time_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.time_ms[name] = round((time.perf_counter() - start) * 1e3, 3)


def _efficiency(leaked: int, n: int, errors: int) -> float:
    h = binary_entropy(errors / n) if n else 0.0
    return leaked / (n * h) if h > 0 else 0.0


def _gain(tx_counts: np.ndarray, clicks: np.ndarray, level: int) -> float:
    total = int(tx_counts[level])
    return float(np.count_nonzero(clicks == level)) / total if total else 0.0


def reconcile(config: SessionConfig, session_id: bytes, channel: ClassicalChannel | None = None) -> Reconciled:
    """Run every stage up to verification.

    Raises:
        SessionAborted: with ``reason`` one of ``insufficient_sifted_bits``,
            ``qber_above_threshold``, ``no_single_photon_bound``,
            ``reconciliation_failed``, ``verification_failed``, ``key_length_not_positive``.
    """
    rng = np.random.default_rng(config.seed)
    stages = _Stages()
    rec: dict[str, Any] = {"session_id": "0x" + session_id.hex(), "pulses": config.pulses}

    def abort(reason: str, detail: str) -> SessionAborted:
        rec["time_ms"] = dict(stages.time_ms)
        if channel is not None:
            rec["channel"] = channel.stats.to_json()
        record = SessionRecord(**rec, aborted=True, abort_reason=reason, abort_detail=detail)
        return SessionAborted(reason, detail, record)

    with stages.stage("quantum"):
        tx: Transmission = transmit(config.pulses, config.channel, config.source, config.eve, rng)
    alice = AliceEndpoint(tx.alice_bits, tx.alice_bases, tx.intensity, session_id)
    channel = channel or InMemoryChannel(alice)
    rec["detections"] = tx.detections

    with stages.stage("sifting"):
        clicks = np.flatnonzero(tx.detected)
        reply = channel.exchange(SiftRequest(tx.detected, tx.bob_bases[clicks]))
        assert isinstance(reply, SiftReply)
        matched = clicks[reply.match]
        click_labels = reply.intensity  # public: the intensity of every click
        labels = click_labels[reply.match]
        bob_groups = {g: matched[labels == level] for g, level in GROUPS.items()}
        bob = tx.bob_bits[bob_groups["signal"]]
        # Public after the quantum phase: how many pulses of each intensity were sent.
        sent = np.bincount(tx.intensity, minlength=3)
    rec["sifted_bits"] = int(bob.size)
    rec["true_qber"] = float(np.mean(tx.alice_bits[bob_groups["signal"]] != bob)) if bob.size else 0.0
    if bob.size < MIN_SIFTED_BITS:
        raise abort("insufficient_sifted_bits", f"{bob.size} sifted bits, at least {MIN_SIFTED_BITS} needed")

    with stages.stage("estimation"):
        positions = sample_positions(bob.size, config.sample_fraction, rng)
        reply = channel.exchange(RevealRequest("sample", positions, bob[positions]))
        assert isinstance(reply, RevealReply)
        errors = int(np.count_nonzero(reply.bits != bob[positions]))
        keep = np.ones(bob.size, dtype=bool)
        keep[positions] = False
        bob = bob[keep]
        qber = errors / positions.size
        qber_upper = qber_upper_bound(errors, positions.size, bob.size, config.eps_pe)
    rec.update(sample_bits=int(positions.size), qber=qber, qber_upper=qber_upper)
    if qber > config.qber_threshold:
        raise abort("qber_above_threshold", f"estimated QBER {qber:.4f} > {config.qber_threshold}")

    with stages.stage("single_photon_bound"):
        gain_mu = _gain(sent, click_labels, SIGNAL)
        bound: SinglePhotonBound
        if config.source.decoy:
            decoy_pos = np.arange(bob_groups["decoy"].size)
            reply = channel.exchange(RevealRequest("decoy", decoy_pos, tx.bob_bits[bob_groups["decoy"]]))
            assert isinstance(reply, RevealReply)
            e_nu = float(np.mean(reply.bits != tx.bob_bits[bob_groups["decoy"]])) if decoy_pos.size else 0.5
            bound = decoy_bound(
                config.source.mu_signal,
                config.source.mu_decoy,
                gain_mu,
                _gain(sent, click_labels, DECOY),
                _gain(sent, click_labels, VACUUM),
                e_nu,
            ).with_sampling_margin(qber_upper - qber)
        else:
            bound = gllp_bound(config.source.mu_signal, gain_mu, qber_upper)
    rec.update(single_photon_fraction=bound.fraction, e1_upper=bound.e1_upper, single_photon_method=bound.method)
    if not bound.usable:
        raise abort("no_single_photon_bound", f"{bound.method}: no positive single-photon yield can be proven")

    with stages.stage("error_correction"):
        try:
            result = cascade(
                bob, _ChannelParities(channel), max(qber, 1e-3), config.cascade_passes, seed=config.seed or 0
            )
        except ReconciliationError as exc:
            raise abort("reconciliation_failed", str(exc)) from exc
        bob = result.corrected
    true_error_rate = float(np.mean(alice.key != bob)) if bob.size else 0.0
    rec.update(
        reconciled_bits=int(bob.size),
        errors_corrected=result.errors_corrected,
        leak_ec_bits=result.leaked_bits,
        # f = leak_EC / (n·h(Q)) with Q the error rate Cascade actually removed.
        efficiency=_efficiency(result.leaked_bits, bob.size, result.errors_corrected),
    )

    with stages.stage("verification"):
        digest = commitment(session_id, bob)
        reply = channel.exchange(VerifyRequest(digest))
        assert isinstance(reply, VerifyReply)
    rec["verification_bits"] = 8 * len(digest)
    if reply.digest != digest:
        raise abort("verification_failed", f"reconciled blocks differ (residual error rate {true_error_rate:.2e})")

    budget = LeakBudget(
        reconciled_bits=int(bob.size),
        sample_bits=int(positions.size),
        qber_upper=qber_upper,
        leak_ec_bits=result.leaked_bits,
        eps_pa=config.eps_pa,
        single_photon_fraction=bound.fraction,
        e1_upper=bound.e1_upper,
    )
    rec.update(leak_terms=budget.terms(), final_bits=max(budget.final_bits, 0))
    rec["time_ms"] = dict(stages.time_ms)
    rec["channel"] = channel.stats.to_json()
    if budget.final_bits <= 0:
        raise abort("key_length_not_positive", f"leakage leaves {budget.final_bits} bits")
    return Reconciled(session_id, alice.key.copy(), bob.copy(), budget, SessionRecord(**rec))


def amplify(block: np.ndarray, budget: LeakBudget, session_id: bytes) -> np.ndarray:
    """Privacy amplification: the final key of ``budget.final_bits`` bits.

    Raises:
        SessionAborted: ``key_length_not_positive``.
    """
    m = budget.require_positive()
    return toeplitz_hash(block, toeplitz_seed(session_id, block.size, m), m)


def run_session(config: SessionConfig, session_id: bytes, channel: ClassicalChannel | None = None) -> SessionOutcome:
    """Reconcile and amplify on both sides. Aborts are reported in the record."""
    try:
        reconciled = reconcile(config, session_id, channel)
    except SessionAborted as exc:
        assert isinstance(exc.record, SessionRecord)
        return SessionOutcome(exc.record, None, None, None)
    start = time.perf_counter()
    alice_key = amplify(reconciled.alice_block, reconciled.budget, session_id)
    bob_key = amplify(reconciled.bob_block, reconciled.budget, session_id)
    record = reconciled.record
    times = {**record.time_ms, "amplification": round((time.perf_counter() - start) * 1e3 / 2, 3)}
    times["total"] = round(sum(times.values()), 3)
    record = SessionRecord(**{**asdict(record), "time_ms": times})
    return SessionOutcome(record, alice_key, bob_key, reconciled)
