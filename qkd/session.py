"""One QKD session between Alice and Bob, stage by stage, with a finite-key length.

``reconcile`` runs the quantum phase, sifting, parameter estimation (every Z-basis
detection disclosed), the decoy bounds of Lim et al. 2014, error correction and
error verification with a universal hash over the classical channel, and returns
both *reconciled* blocks, the key length and the Toeplitz seed Alice drew: the caller
commits ``commitment(session_id, block)`` on chain at this point. ``amplify`` then
compresses a reconciled block to the final key. ``run_session`` does both.

Round trips: sifting 1, estimation 1, LDPC 1 + one per blind retry, verification 1
(which also carries the Toeplitz seed): 4 to 8. With LDPC each frame is verified by its
own universal-hash tag, sent with its syndrome (a wrong word is retried like a frame
that did not decode); the last round trip then only fixes the length and the seed.

An abort is not an exception to the caller of ``run_session``: the record carries
``aborted`` and a named ``abort_reason``.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, TypeVar

import numpy as np

from qkd.amplification import toeplitz_hash
from qkd.bb84 import Clicks, DecoyProtocol, EveConfig, X, Z, transmit, transmit_pulses
from qkd.channel import ChannelModel, fibre
from qkd.classical import (
    SYNDROME_ROUNDS_MAX,
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
    SyndromeReply,
    SyndromeRequest,
    VerifyReply,
    VerifyRequest,
)
from qkd.errors import (
    ConfigError,
    FrameVerificationFailed,
    ProtocolViolation,
    QkdError,
    ReconciliationError,
    SessionAborted,
)
from qkd.estimation import binary_entropy
from qkd.finitekey import COMMITMENT_BITS, Counts, KeyLength, estimate, pulses_for
from qkd.ldpc import make_code, stage_syndrome, tail_code
from qkd.reconciliation import RECONCILERS, indicator_bits
from qkd.verification import FrameVerification, UniversalHash

MIN_KEY_BITS = 64
DEFAULT_TARGET_BITS = 256


@dataclass(frozen=True)
class SessionConfig:
    """A session's parameters. ``pulses=None`` sizes the session from the finite-key
    bound for ``target_bits`` final bits over ``channel``, at the reconciliation
    method's planning efficiency, with 20 % more pulses than the mean needs."""

    pulses: int | None = None
    channel: ChannelModel = field(default_factory=lambda: fibre(10.0))
    protocol: DecoyProtocol = field(default_factory=DecoyProtocol)
    eve: EveConfig = field(default_factory=EveConfig)
    qber_threshold: float = 0.11
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    reconciliation: Literal["ldpc", "cascade"] = "ldpc"
    simulation: Literal["clicks", "pulses"] = "clicks"
    target_bits: int = DEFAULT_TARGET_BITS
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.pulses is not None and self.pulses <= 0:
            raise ConfigError("pulses must be positive")
        if not 0 < self.qber_threshold < 0.5:
            raise ConfigError("qber threshold must be in (0, 0.5)")
        if not (0 < self.eps_sec < 1 and 0 < self.eps_cor < 1):
            raise ConfigError("security parameters must be in (0, 1)")
        if self.reconciliation not in RECONCILERS:
            raise ConfigError(f"reconciliation must be one of {sorted(RECONCILERS)}")
        if self.simulation not in ("clicks", "pulses"):
            raise ConfigError("simulation must be 'clicks' or 'pulses'")
        if self.target_bits < 1:
            raise ConfigError("target_bits must be positive")

    def resolved_pulses(self) -> int:
        """``pulses``, or the size the bound asks for (raises ConfigError when out of reach)."""
        if self.pulses is not None:
            return self.pulses
        f = RECONCILERS[self.reconciliation].planning_efficiency
        return _sized(self.channel, self.protocol, self.target_bits, self.eps_sec, self.eps_cor, f)


@lru_cache(maxsize=64)
def _sized(
    channel: ChannelModel, protocol: DecoyProtocol, target: int, eps_sec: float, eps_cor: float, efficiency: float
) -> int:
    # 20 % more than the mean needs: a session at its mean would fail half the time.
    need = pulses_for(channel, target, protocol, efficiency=efficiency, eps_sec=eps_sec, eps_cor=eps_cor)
    return math.ceil(1.2 * need)


@dataclass(frozen=True)
class SessionRecord:
    """Everything measured about one session (JSON-ready through ``to_json``)."""

    session_id: str
    pulses: int
    detections: int = 0
    sifted_bits: int = 0  # X-basis detections: the key string
    sample_bits: int = 0  # Z-basis detections, all disclosed
    qber: float = 0.0  # Z-basis error rate (disclosed)
    true_qber: float = 0.0  # X-basis error rate before correction (simulation only)
    single_photon_fraction: float = 0.0  # s_X1 lower bound / n_X
    e1_upper: float = 0.0  # phase error rate upper bound of the single photons
    reconciled_bits: int = 0
    errors_corrected: int = 0
    leak_ec_bits: int = 0
    efficiency: float = 0.0
    verification_bits: int = 0
    reconciliation: str = ""
    round_trips: int = 0
    eps_sec: float = 0.0
    eps_cor: float = 0.0
    lim_bound_bits: int = 0  # Lim's eq. 1 for the same counts and public bits
    leak_terms: dict[str, float | int] = field(default_factory=dict)
    counts: dict[str, list[float]] = field(default_factory=dict)
    final_bits: int = 0
    aborted: bool = False
    abort_reason: str | None = None
    abort_detail: str | None = None
    time_ms: dict[str, float] = field(default_factory=dict)
    channel: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AliceEndpoint:
    """Alice's side of post-processing, a state machine over the stages
    ``sift -> estimate -> reconcile -> verify``: she holds only her own data about the
    clicks, counts every bit she discloses herself, computes the key length the bound
    allows from what she saw, and refuses a request out of turn, malformed, or asking
    for a longer key than her own bound."""

    def __init__(
        self,
        bits: np.ndarray,
        bases: np.ndarray,
        intensity: np.ndarray,
        session_id: bytes,
        protocol: DecoyProtocol | None = None,
        eps_sec: float = 1e-10,
        eps_cor: float = 1e-15,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._bits = bits
        self._bases = bases
        self._intensity = intensity
        self._session_id = session_id
        self._protocol = protocol or DecoyProtocol()
        self._eps_sec = eps_sec
        self._eps_cor = eps_cor
        self._entropy = entropy
        self._seq = 0
        self._stage = "sift"
        self._x = np.zeros(0, dtype=bool)
        self._z = np.zeros(0, dtype=np.int64)
        self._counts: Counts | None = None
        self._syndrome_rounds = 0
        self._frames: FrameVerification | None = None  # per-frame tags sent with the syndromes
        # Pinned by the first syndrome round (her eps_cor and tag count describe it):
        # (frame_bits, rows, code_seed, frames), the frames still pending, and the merged
        # pairs the next retry must split from.
        self._framing: tuple[int, int, int, int] | None = None
        self._pending: frozenset[int] = frozenset()
        self._split_from = 0
        self._tail_sent = False  # the checks beyond the mother code end the rounds
        self.disclosed_bits = 0  # error-correction bits she sent (syndromes, parities, feedback)
        self.key: np.ndarray = np.zeros(0, dtype=np.uint8)

    def handle(self, request: Request) -> Reply:
        """Answer one request.

        Raises:
            ProtocolViolation: ``replayed_message`` (a sequence number out of order),
                ``out_of_order`` (a stage out of turn), ``malformed_message``, or
                ``excessive_length`` (a final length above her own bound).
        """
        if request.seq != self._seq + 1:
            raise ProtocolViolation("replayed_message", f"request {request.seq} where {self._seq + 1} was due")
        self._seq += 1
        try:
            reply = self._answer(request)
        except ProtocolViolation:
            self._stage = "failed"  # the session is over for her too: no key from it
            raise
        return replace(reply, seq=request.seq)

    def _expect(self, *stages: str) -> None:
        if self._stage not in stages:
            raise ProtocolViolation("out_of_order", f"request out of turn at stage {self._stage!r}")

    def _answer(self, request: Request) -> Reply:
        if isinstance(request, SiftRequest):
            self._expect("sift")
            if request.bases.shape != self._bases.shape:
                raise ProtocolViolation("malformed_message", "one basis per click expected")
            self._x = (self._bases == X) & (request.bases == X)
            self._z = np.flatnonzero((self._bases == Z) & (request.bases == Z))
            self.key = self._bits[self._x].copy()
            self._stage = "estimate"
            return SiftReply(self._bases.copy(), self._intensity.copy())
        if isinstance(request, RevealRequest):
            self._expect("estimate")
            if request.group != "z" or not np.array_equal(request.positions, np.arange(self._z.size)):
                raise ProtocolViolation("malformed_message", "the test basis is disclosed whole, once")
            if request.bits.shape != self._z.shape:
                raise ProtocolViolation("malformed_message", "one bit per test-basis detection expected")
            mine = self._bits[self._z]
            wrong = np.zeros(self._bits.size, dtype=bool)
            wrong[self._z] = mine != (request.bits & 1)
            z_mask = np.zeros(self._bits.size, dtype=bool)
            z_mask[self._z] = True
            labels = self._intensity.astype(np.int64)
            self._counts = Counts(
                _per_intensity(self._x, labels), _per_intensity(z_mask, labels), _per_intensity(wrong, labels)
            )
            self._stage = "reconcile"
            return RevealReply(mine.copy())
        if isinstance(request, ParityRequest):
            self._expect("reconcile")
            if not all(_valid_positions(s, self.key.size) for s in request.index_sets):
                raise ProtocolViolation("malformed_message", "parity index out of range")
            self.disclosed_bits += len(request.index_sets)
            return ParityReply(np.array([int(self.key[s].sum()) & 1 for s in request.index_sets], dtype=np.uint8))
        if isinstance(request, SyndromeRequest):
            self._expect("reconcile")
            return self._syndromes(request)
        if isinstance(request, VerifyRequest):
            self._expect("reconcile")
            self._stage = "done"
            return self._verify(request)
        raise ProtocolViolation("malformed_message", f"unexpected request {type(request).__name__}")

    def _syndromes(self, request: SyndromeRequest) -> SyndromeReply:
        total = request.frames * request.frame_bits
        ids = request.frame_ids or tuple(range(request.frames))
        if not (request.frames >= 1 and total >= self.key.size > total - request.frame_bits):
            raise ProtocolViolation("malformed_message", "frames do not cover the key")
        if not all(0 <= f < request.frames for f in ids) or len(set(ids)) != len(ids):
            raise ProtocolViolation("malformed_message", "frame out of range")
        tail = request.extra != 0
        if tail and not (request.extra > 0 and request.merged == request.split_to == 0):
            raise ProtocolViolation("malformed_message", "tail checks only once every pair is split")
        if not tail and not (
            0 <= request.merged <= request.rows // 2 and -1 <= request.split_to < max(request.merged, 0)
        ):
            raise ProtocolViolation("malformed_message", "merge or split out of range")
        first = request.split_to < 0
        self._syndrome_rounds += 1
        if first != (self._syndrome_rounds == 1) or self._syndrome_rounds > SYNDROME_ROUNDS_MAX:
            raise ProtocolViolation("malformed_message", f"syndrome round {self._syndrome_rounds} out of protocol")
        if request.hash_keys and not first:
            raise ProtocolViolation("malformed_message", "frame hash keys come with the first syndromes only")
        self._continue(request, ids, first)
        try:
            code = make_code(request.frame_bits, request.rows, request.code_seed)
            if tail:
                code = tail_code(request.frame_bits, request.rows, request.code_seed, request.extra)
        except ConfigError as exc:
            raise ProtocolViolation("malformed_message", str(exc)) from exc
        word = np.concatenate([self.key, np.zeros(total - self.key.size, np.uint8)]).reshape(request.frames, -1)
        tags: tuple[tuple[int, ...], ...] = ()
        if request.hash_keys:
            tags = self._frame_tags(request, word)
        full = [code.syndrome(word[f]) for f in ids]
        syndromes = np.stack(
            [
                m
                if tail
                else stage_syndrome(m, request.merged)
                if first
                else m[2 * request.split_to : 2 * request.merged : 2]
                for m in full
            ]
        )
        # Bob's next request (a retry, or none) tells which frames this round decoded:
        # one bit per frame, charged as the reconciler charges it.
        self.disclosed_bits += int(syndromes.size) + indicator_bits(request.frames, self._syndrome_rounds)
        return SyndromeReply(syndromes, tags)

    def _continue(self, request: SyndromeRequest, ids: tuple[int, ...], first: bool) -> None:
        """Pin the framing at the first round; a retry must keep it, split on from where
        the last round stopped, and name only frames still pending.

        Raises:
            ProtocolViolation: ``malformed_message`` for a retry that does not.
        """
        framing = (request.frame_bits, request.rows, request.code_seed, request.frames)
        if not first:
            if framing != self._framing:
                raise ProtocolViolation("malformed_message", f"retry framing {framing}, {self._framing} agreed")
            if request.merged != self._split_from:
                raise ProtocolViolation(
                    "malformed_message", f"retry splits from pair {request.merged}, not {self._split_from}"
                )
            if self._tail_sent:
                raise ProtocolViolation("malformed_message", "no round after the tail checks")
            if not set(ids) <= self._pending:
                raise ProtocolViolation(
                    "malformed_message", f"retry names frames {sorted(set(ids) - self._pending)} not pending"
                )
        self._framing = framing
        self._pending = frozenset(ids)
        self._split_from = request.merged if first else request.split_to
        self._tail_sent = request.extra != 0

    def _frame_tags(self, request: SyndromeRequest, word: np.ndarray) -> tuple[tuple[int, ...], ...]:
        keys = request.hash_keys
        need = FrameVerification.evaluations(request.frame_bits, request.frames, SYNDROME_ROUNDS_MAX, self._eps_cor)
        if (
            len(keys) < need
            or len(set(keys)) != len(keys)
            or request.frame_ids not in ((), tuple(range(request.frames)))
        ):
            raise ProtocolViolation("malformed_message", "too few or repeated frame hash keys, or not every frame")
        try:
            uhf = UniversalHash(keys, request.frame_bits)
            tags = tuple(uhf.tag(w) for w in word)
        except ConfigError as exc:
            raise ProtocolViolation("malformed_message", str(exc)) from exc
        self._frames = FrameVerification(uhf, request.frames, SYNDROME_ROUNDS_MAX)
        return tags

    def _verify(self, request: VerifyRequest) -> VerifyReply:
        n = self.key.size
        keys = request.keys
        mine: tuple[int, ...] = ()
        if self._frames is not None:
            # The frames were verified with their syndromes: no whole-block tag.
            if keys:
                raise ProtocolViolation("malformed_message", "the frames are verified already")
            eps_cor, tag_bits = self._frames.eps_cor, self._frames.tag_bits
        else:
            if len(keys) < UniversalHash.evaluations(n, self._eps_cor) or len(set(keys)) != len(keys):
                raise ProtocolViolation("malformed_message", "too few or repeated hash keys for the agreed eps_cor")
            try:
                uhf = UniversalHash(keys, n)
                mine = uhf.tag(self.key)
            except ConfigError as exc:
                raise ProtocolViolation("malformed_message", str(exc)) from exc
            eps_cor, tag_bits = uhf.eps_cor, uhf.tag_bits
        assert self._counts is not None
        own = KeyLength(
            estimate(self._protocol, self._counts, self._eps_sec),
            self.disclosed_bits + COMMITMENT_BITS,
            self._eps_sec,
            eps_cor,
            tag_bits,
        ).bits
        if not 1 <= request.final_bits <= own:
            raise ProtocolViolation("excessive_length", f"final length {request.final_bits}, her bound allows {own}")
        need = n + request.final_bits - 1
        seed = np.unpackbits(np.frombuffer(self._entropy((need + 7) // 8), dtype=np.uint8))[:need]
        return VerifyReply(mine, seed)


def _valid_positions(positions: np.ndarray, size: int) -> bool:
    return positions.ndim == 1 and (positions.size == 0 or (int(positions.min()) >= 0 and int(positions.max()) < size))


@dataclass(frozen=True)
class Reconciled:
    """Both reconciled blocks (equal once verified), the key length and the public
    Toeplitz seed for privacy amplification."""

    session_id: bytes
    alice_block: np.ndarray
    bob_block: np.ndarray
    budget: KeyLength
    toeplitz_seed: np.ndarray
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


ReplyT = TypeVar("ReplyT", SiftReply, RevealReply, ParityReply, SyndromeReply, VerifyReply)


class _Dialogue:
    """Bob's end: numbers each request and checks that the reply answers it."""

    def __init__(self, channel: ClassicalChannel) -> None:
        self.channel = channel
        self.seq = 0
        self.round_trips = 0

    def ask(self, request: Request) -> Reply:
        self.seq += 1
        self.round_trips += 1
        try:
            reply = self.channel.exchange(replace(request, seq=self.seq))
        except ProtocolViolation:
            raise
        except QkdError as exc:
            raise ProtocolViolation("peer_refused", str(exc)) from exc
        if reply.seq != self.seq:
            raise ProtocolViolation("replayed_message", f"reply numbered {reply.seq} to request {self.seq}")
        return reply

    def expect(self, request: Request, kind: type[ReplyT]) -> ReplyT:
        reply = self.ask(request)
        if not isinstance(reply, kind):
            raise ProtocolViolation("malformed_message", f"{type(reply).__name__} where {kind.__name__} was due")
        return reply


def _per_intensity(mask: np.ndarray, intensity: np.ndarray) -> tuple[float, float, float]:
    c = np.bincount(intensity[mask], minlength=3)
    return (float(c[0]), float(c[1]), float(c[2]))


def reconcile(config: SessionConfig, session_id: bytes, channel: ClassicalChannel | None = None) -> Reconciled:
    """Run every stage up to verification.

    Raises:
        SessionAborted: with ``reason`` one of ``insufficient_detections``,
            ``qber_above_threshold``, ``no_single_photon_bound``, ``reconciliation_failed``,
            ``key_length_not_positive``, ``verification_failed``, or a protocol
            violation's ``malformed_message`` / ``replayed_message`` / ``out_of_order`` /
            ``excessive_length`` / ``peer_refused``.
        ConfigError: ``pulses=None`` and the target is out of reach over this channel.
    """
    pulses = config.resolved_pulses()
    rng = np.random.default_rng(config.seed)
    stages = _Stages()
    rec: dict[str, Any] = {
        "session_id": "0x" + session_id.hex(),
        "pulses": pulses,
        "eps_sec": config.eps_sec,
        "reconciliation": config.reconciliation,
    }
    dialogue: _Dialogue | None = None

    def abort(reason: str, detail: str) -> SessionAborted:
        rec["time_ms"] = dict(stages.time_ms)
        if dialogue is not None:
            rec["channel"] = dialogue.channel.stats.to_json()
            rec["round_trips"] = dialogue.round_trips
        record = SessionRecord(**rec, aborted=True, abort_reason=reason, abort_detail=detail)
        return SessionAborted(reason, detail, record)

    with stages.stage("quantum"):
        simulate = transmit if config.simulation == "clicks" else transmit_pulses
        clicks: Clicks = simulate(pulses, config.channel, config.protocol, config.eve, rng)
    alice = AliceEndpoint(
        clicks.alice_bits,
        clicks.alice_bases,
        clicks.intensity,
        session_id,
        config.protocol,
        config.eps_sec,
        config.eps_cor,
    )
    dialogue = _Dialogue(channel or InMemoryChannel(alice))
    rec["detections"] = clicks.detections
    try:
        with stages.stage("sifting"):
            sift = dialogue.expect(SiftRequest(clicks.bob_bases), SiftReply)
            if sift.bases.shape != clicks.bob_bases.shape or sift.intensity.shape != clicks.bob_bases.shape:
                raise ProtocolViolation("malformed_message", "sift reply does not cover every click")
            labels = sift.intensity.astype(np.int64)
            if labels.size and (labels.min() < 0 or labels.max() > 2):
                raise ProtocolViolation("malformed_message", "unknown intensity label")
            x_mask = (sift.bases == X) & (clicks.bob_bases == X)
            z_mask = (sift.bases == Z) & (clicks.bob_bases == Z)
            bob = clicks.bob_bits[x_mask]
        rec["sifted_bits"] = int(bob.size)
        rec["true_qber"] = float(np.mean(clicks.alice_bits[x_mask] != bob)) if bob.size else 0.0
        if bob.size < MIN_KEY_BITS or not z_mask.any():
            raise abort(
                "insufficient_detections", f"{bob.size} key-basis and {int(z_mask.sum())} test-basis detections"
            )

        with stages.stage("estimation"):
            z_bits = clicks.bob_bits[z_mask]
            reveal = dialogue.expect(RevealRequest("z", np.arange(z_bits.size), z_bits), RevealReply)
            if reveal.bits.shape != z_bits.shape:
                raise ProtocolViolation("malformed_message", "Z reveal of the wrong length")
            wrong = np.zeros(labels.size, dtype=bool)
            wrong[np.flatnonzero(z_mask)] = reveal.bits != z_bits
            counts = Counts(
                _per_intensity(x_mask, labels), _per_intensity(z_mask, labels), _per_intensity(wrong, labels)
            )
            qber = sum(counts.m_z) / sum(counts.n_z)
            estimates = estimate(config.protocol, counts, config.eps_sec)
        rec.update(
            sample_bits=int(z_bits.size),
            qber=qber,
            counts={"n_x": list(counts.n_x), "n_z": list(counts.n_z), "m_z": list(counts.m_z)},
            single_photon_fraction=estimates.s_x1 / bob.size,
            e1_upper=estimates.phase_error,
        )
        if qber > config.qber_threshold:
            raise abort("qber_above_threshold", f"test-basis QBER {qber:.4f} > {config.qber_threshold}")
        if estimates.s_x1 < 1 or estimates.phase_error >= 0.5:
            raise abort(
                "no_single_photon_bound",
                f"single photons >= {estimates.s_x1:.0f}, phase error <= {estimates.phase_error:.3f}",
            )

        with stages.stage("error_correction"):
            try:
                # Codes are sized for the test-basis QBER plus one standard error: the
                # key basis may run a little higher than its sample (measured: one is
                # enough with the blind retries; two only spends more bits). Sized for
                # the QBER itself, 16 sessions at 10 km gave LDPC f 1.175 against 1.179,
                # for a round trip more on average (5.8, at most 8) and 20 % more compute.
                design = qber + math.sqrt(max(qber * (1 - qber), 1e-6) / sum(counts.n_z))
                result = RECONCILERS[config.reconciliation].run(
                    bob, dialogue.ask, design, config.seed or 0, config.eps_cor
                )
            except FrameVerificationFailed as exc:
                raise abort("verification_failed", str(exc)) from exc
            except ReconciliationError as exc:
                raise abort("reconciliation_failed", str(exc)) from exc
            bob = result.corrected
        n = int(bob.size)
        errors = int(np.count_nonzero(clicks.bob_bits[x_mask] != bob))
        rec.update(
            reconciled_bits=n,
            errors_corrected=errors,
            leak_ec_bits=result.leaked_bits,
            efficiency=_efficiency(result.leaked_bits, n, errors),
        )

        # Frames verified during reconciliation need no whole-block hash.
        uhf = None if result.verified else UniversalHash.fresh(n, config.eps_cor)
        check = result.verified or uhf
        assert check is not None
        budget = KeyLength(
            estimates, result.leaked_bits + COMMITMENT_BITS, config.eps_sec, check.eps_cor, check.tag_bits
        )
        # Lim's bound at the target eps_cor, not the one achieved: final/lim then prices
        # the verification as this session did it.
        lim = KeyLength(
            estimates, result.leaked_bits + COMMITMENT_BITS, config.eps_sec, config.eps_cor, 0.0, paper=True
        )
        rec.update(
            eps_cor=check.eps_cor,
            verification_bits=check.tag_bits,
            lim_bound_bits=lim.bits,
            leak_terms={**budget.terms(), "leak_ec_bits": result.leaked_bits, "commitment_bits": COMMITMENT_BITS},
            final_bits=max(budget.bits, 0),
        )
        if budget.bits <= 0:
            raise abort("key_length_not_positive", f"the bound leaves {budget.bits} bits: {budget.terms()}")

        with stages.stage("verification"):
            # One way: Bob keeps his tag and compares it with Alice's.
            keys = uhf.keys if uhf is not None else ()
            verify = dialogue.expect(VerifyRequest(keys, budget.bits), VerifyReply)
            if len(verify.tag) != len(keys):
                raise ProtocolViolation("malformed_message", "verification tag of the wrong length")
            if verify.toeplitz_seed.shape != (n + budget.bits - 1,):
                raise ProtocolViolation(
                    "malformed_message", f"Toeplitz seed of {verify.toeplitz_seed.size} bits, {n + budget.bits - 1} due"
                )
    except ProtocolViolation as exc:
        raise abort(exc.reason, exc.detail) from exc
    rec["round_trips"] = dialogue.round_trips
    rec["time_ms"] = dict(stages.time_ms)
    rec["channel"] = dialogue.channel.stats.to_json()
    if uhf is not None and verify.tag != uhf.tag(bob):
        raise abort("verification_failed", "the universal hashes of the two blocks differ")
    seed = (verify.toeplitz_seed.astype(np.uint8) & 1).copy()
    return Reconciled(session_id, alice.key.copy(), bob.copy(), budget, seed, SessionRecord(**rec))


def _efficiency(leaked: int, n: int, errors: int) -> float:
    h = binary_entropy(errors / n) if n else 0.0
    return leaked / (n * h) if h > 0 else 0.0


def amplify(block: np.ndarray, budget: KeyLength, seed: np.ndarray) -> np.ndarray:
    """Privacy amplification: the final key of ``budget.bits`` bits, by the Toeplitz
    matrix of ``seed`` (``block.size + budget.bits - 1`` public random bits).

    Raises:
        SessionAborted: ``key_length_not_positive``.
        ConfigError: a seed of the wrong length.
    """
    m = budget.require_positive()
    return toeplitz_hash(block, seed[: block.size + m - 1], m)


def run_session(config: SessionConfig, session_id: bytes, channel: ClassicalChannel | None = None) -> SessionOutcome:
    """Reconcile and amplify on both sides. Aborts are reported in the record."""
    try:
        reconciled = reconcile(config, session_id, channel)
    except SessionAborted as exc:
        assert isinstance(exc.record, SessionRecord)
        return SessionOutcome(exc.record, None, None, None)
    start = time.perf_counter()
    alice_key = amplify(reconciled.alice_block, reconciled.budget, reconciled.toeplitz_seed)
    bob_key = amplify(reconciled.bob_block, reconciled.budget, reconciled.toeplitz_seed)
    record = reconciled.record
    times = {**record.time_ms, "amplification": round((time.perf_counter() - start) * 1e3 / 2, 3)}
    times["total"] = round(sum(times.values()), 3)
    record = SessionRecord(**{**asdict(record), "time_ms": times})
    return SessionOutcome(record, alice_key, bob_key, reconciled)
