"""Whole sessions: keys, aborts with named reasons, leakage, the classical transcript."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from qkd import session as session_module
from qkd.bb84 import Eve, EveConfig, SourceConfig
from qkd.cascade import cascade
from qkd.channel import ChannelModel, fibre, free_space_v2i
from qkd.classical import InMemoryChannel, ParityReply, Reply, Request, VerifyRequest
from qkd.errors import ConfigError, ReconciliationError, SessionAborted
from qkd.estimation import binary_entropy
from qkd.session import AliceEndpoint, SessionConfig, amplify, reconcile, run_session
from qkd.verification import commitment

SID = bytes(range(32))
DECOY = SourceConfig(decoy=True)


def test_no_eve_gives_identical_keys() -> None:
    out = run_session(SessionConfig(pulses=2_000_000, source=DECOY, seed=1), SID)
    r = out.record
    assert not r.aborted, r.abort_detail
    assert out.alice_key is not None and out.bob_key is not None
    assert np.array_equal(out.alice_key, out.bob_key)
    assert out.alice_key.size == r.final_bits > 256
    assert 0.4 < r.sifted_bits / r.detections < 0.5  # half of the clicks, less the decoy/vacuum ones
    assert r.qber_upper >= r.qber
    assert abs(r.qber - r.true_qber) < 0.02
    # the final length never beats the asymptotic bound n(1 - 2h(Q))
    assert r.final_bits <= r.reconciled_bits * (1 - 2 * binary_entropy(r.qber))
    assert set(r.time_ms) >= {"quantum", "sifting", "estimation", "error_correction", "verification", "total"}


def test_leak_terms_add_up() -> None:
    r = run_session(SessionConfig(pulses=2_000_000, source=DECOY, seed=2), SID).record
    t = r.leak_terms
    assert t["commitment_bits"] == 256 == r.verification_bits
    assert t["leak_ec_bits"] == r.leak_ec_bits
    total = (
        t["reconciled_bits"]
        - t["multi_photon_bits"]
        - t["phase_error_bits"]
        - t["leak_ec_bits"]
        - t["commitment_bits"]
        - t["finite_key_bits"]
    )
    assert abs(total - r.final_bits) <= 1.0
    assert 1.0 < r.efficiency < 1.3


def test_reconcile_then_amplify_matches_the_commitment() -> None:
    rec = reconcile(SessionConfig(pulses=2_000_000, source=DECOY, seed=3), SID)
    assert np.array_equal(rec.alice_block, rec.bob_block)
    on_chain = commitment(SID, rec.bob_block)  # what both sides would commit
    assert on_chain == commitment(SID, rec.alice_block)
    key = amplify(rec.bob_block, rec.budget, SID)
    assert key.size == rec.budget.final_bits
    assert np.array_equal(key, amplify(rec.alice_block, rec.budget, SID))
    # a different session id seeds a different Toeplitz matrix
    assert not np.array_equal(key, amplify(rec.bob_block, rec.budget, b"\x00" * 32))


def test_full_intercept_resend_aborts() -> None:
    r = run_session(SessionConfig(pulses=1_000_000, eve=EveConfig(Eve.INTERCEPT_RESEND, 1.0), seed=4), SID).record
    assert r.aborted and r.abort_reason == "qber_above_threshold"
    assert abs(r.true_qber - 0.25) < 0.03


def test_pns_is_caught_by_the_decoys() -> None:
    cfg = SessionConfig(pulses=2_000_000, channel=fibre(30), source=DECOY, eve=EveConfig(Eve.PNS, 1.0), seed=5)
    r = run_session(cfg, SID).record
    assert r.aborted and r.abort_reason == "no_single_photon_bound"
    assert r.true_qber < 0.05  # the attack itself causes no errors


def test_without_decoys_multi_photons_are_charged() -> None:
    r = run_session(SessionConfig(pulses=1_000_000, seed=6), SID).record  # mu = 0.5 at 10 km: GLLP gives nothing
    assert r.aborted and r.abort_reason == "no_single_photon_bound"
    short = run_session(
        SessionConfig(pulses=2_000_000, channel=ChannelModel(1.0, 0.2, 0, 0.6, 1e-6, 0.01), seed=6), SID
    ).record
    assert not short.aborted, short.abort_detail
    assert short.single_photon_method == "gllp" and 0 < short.single_photon_fraction < 1


def test_too_few_pulses_aborts_with_reason() -> None:
    r = run_session(SessionConfig(pulses=1000, seed=7), SID).record
    assert r.aborted and r.abort_reason == "insufficient_sifted_bits"


def test_small_block_gives_no_key() -> None:
    r = run_session(SessionConfig(pulses=300_000, source=DECOY, seed=8), SID).record
    assert r.aborted and r.abort_reason == "key_length_not_positive"


def test_free_space_link_works() -> None:
    out = run_session(SessionConfig(pulses=2_000_000, channel=free_space_v2i(0.1), source=DECOY, seed=9), SID)
    assert not out.record.aborted
    assert out.alice_key is not None and out.bob_key is not None
    assert np.array_equal(out.alice_key, out.bob_key)


def test_transcript_is_counted() -> None:
    r = run_session(SessionConfig(pulses=2_000_000, source=DECOY, seed=10), SID).record
    ch = r.channel
    kinds = ch["by_kind"]
    assert isinstance(kinds, dict)
    assert kinds["SiftRequest"] == 1 and kinds["VerifyRequest"] == 1
    assert kinds["ParityRequest"] == ch["rounds"] - 4  # sift, sample, decoy, verify
    assert ch["messages"] == 2 * ch["rounds"]
    assert isinstance(ch["bits"], int) and ch["bits"] > r.leak_ec_bits


def test_same_seed_same_session() -> None:
    a = run_session(SessionConfig(pulses=1_000_000, source=DECOY, seed=11), SID)
    b = run_session(SessionConfig(pulses=1_000_000, source=DECOY, seed=11), SID)
    assert a.record.final_bits == b.record.final_bits
    if a.alice_key is not None:
        assert b.alice_key is not None and np.array_equal(a.alice_key, b.alice_key)


class _LyingAlice(AliceEndpoint):
    """Answers every 7th parity request wrongly: Cascade cannot converge."""

    answered = 0

    def handle(self, request: Request) -> Reply:
        reply = super().handle(request)
        if isinstance(reply, ParityReply):
            self.answered += 1
            if self.answered % 7 == 0:
                reply.parities[0] ^= 1
        return reply


class _DriftingAlice(AliceEndpoint):
    """Her reconciled block picks up one flipped bit before verification."""

    def handle(self, request: Request) -> Reply:
        if isinstance(request, VerifyRequest):
            self.key[0] ^= 1
        return super().handle(request)


@pytest.mark.parametrize(
    ("endpoint", "reason"), [(_LyingAlice, "reconciliation_failed"), (_DriftingAlice, "verification_failed")]
)
def test_corrupted_peer_aborts_with_reason(
    monkeypatch: pytest.MonkeyPatch, endpoint: type[AliceEndpoint], reason: str
) -> None:
    monkeypatch.setattr(session_module, "AliceEndpoint", endpoint)
    with pytest.raises(SessionAborted) as exc:
        reconcile(SessionConfig(pulses=2_000_000, source=DECOY, seed=12), SID)
    assert exc.value.reason == reason
    assert exc.value.record.aborted and exc.value.record.abort_reason == reason


def test_cascade_refuses_to_loop_on_lies() -> None:
    class Liar:
        def parities(self, index_sets: Sequence[np.ndarray]) -> np.ndarray:
            return np.ones(len(index_sets), dtype=np.uint8)

    with pytest.raises(ReconciliationError):
        cascade(np.zeros(1000, dtype=np.uint8), Liar(), 0.02)


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        SessionConfig(pulses=0)
    with pytest.raises(ConfigError):
        SessionConfig(qber_threshold=0.7)


def test_in_memory_channel_copies() -> None:
    from qkd.classical import ParityRequest

    alice = AliceEndpoint(np.ones(8, dtype=np.uint8), np.zeros(8, dtype=np.uint8), np.zeros(8, dtype=np.uint8), SID)
    alice.key = np.ones(8, dtype=np.uint8)
    ch = InMemoryChannel(alice)
    idx = np.array([0, 1, 2])
    reply = ch.exchange(ParityRequest((idx,)))
    assert list(reply.parities) == [1]  # type: ignore[union-attr]
    assert ch.stats.rounds == 1 and ch.stats.messages == 2
