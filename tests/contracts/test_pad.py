"""Pad consumption: forward only, no gaps, no reuse, never past the key."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import errors
from tests.contracts.conftest import Fleet, addr, sid, snapshot

KH = b"\x42" * 32
CT = b"\xc7" * 32
_fresh_ids = itertools.count(1000)


def _agreed(fleet: Fleet, n: int = 1, bits: int = 1024) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(n), addr(b), KH, bits, 3600)
    b.confirm_key(sid(n), KH)


def test_record_message(fleet: Fleet) -> None:
    _agreed(fleet)
    a, b = fleet.veh[0], fleet.veh[1]
    result = a.record_message(sid(1), CT, 0, 256)
    assert result.event("MessageRecorded").args == {
        "sessionId": sid(1),
        "sender": addr(a),
        "ciphertextHash": CT,
        "offset": 0,
        "bits": 256,
    }
    b.record_message(sid(1), CT, 256, 256)  # either party, one shared pad cursor
    assert a.consumed_bits(sid(1)) == 512
    assert a.get_session(sid(1)).consumed_bits == 512


def test_pad_reuse_refused(fleet: Fleet) -> None:
    _agreed(fleet)
    a = fleet.veh[0]
    a.record_message(sid(1), CT, 0, 256)
    before = snapshot(fleet, sessions=(sid(1),))
    with pytest.raises(errors.PadOffsetMismatch) as exc:
        a.record_message(sid(1), CT, 0, 256)
    assert (exc.value.sessionId, exc.value.expected, exc.value.given) == (sid(1), 256, 0)
    with pytest.raises(errors.PadOffsetMismatch):
        fleet.veh[1].record_message(sid(1), CT, 128, 8)  # overlapping
    assert snapshot(fleet, sessions=(sid(1),)) == before


def test_pad_gap_refused(fleet: Fleet) -> None:
    _agreed(fleet)
    with pytest.raises(errors.PadOffsetMismatch) as exc:
        fleet.veh[0].record_message(sid(1), CT, 8, 8)
    assert (exc.value.expected, exc.value.given) == (0, 8)
    assert fleet.veh[0].consumed_bits(sid(1)) == 0


def test_pad_overrun_refused(fleet: Fleet) -> None:
    _agreed(fleet, bits=1000)
    a = fleet.veh[0]
    a.record_message(sid(1), CT, 0, 990)
    with pytest.raises(errors.PadOverrun) as exc:
        a.record_message(sid(1), CT, 990, 11)
    assert (exc.value.keyBits, exc.value.end) == (1000, 1001)
    a.record_message(sid(1), CT, 990, 10)  # exactly to the end is fine
    with pytest.raises(errors.PadOverrun):
        a.record_message(sid(1), CT, 1000, 1)
    assert a.consumed_bits(sid(1)) == 1000


def test_overflowing_record_is_an_overrun(fleet: Fleet) -> None:
    _agreed(fleet, bits=2**32 - 1)
    fleet.veh[0].record_message(sid(1), CT, 0, 2**32 - 2)
    with pytest.raises(errors.PadOverrun) as exc:
        fleet.veh[0].record_message(sid(1), CT, 2**32 - 2, 2**32 - 1)
    assert exc.value.end == 2 * (2**32) - 3


def test_empty_record_refused(fleet: Fleet) -> None:
    _agreed(fleet)
    with pytest.raises(errors.EmptyRecord):
        fleet.veh[0].record_message(sid(1), CT, 0, 0)


def test_only_parties_record(fleet: Fleet) -> None:
    _agreed(fleet)
    with pytest.raises(errors.NotSessionParty) as exc:
        fleet.veh[2].record_message(sid(1), CT, 0, 8)
    assert exc.value.caller == addr(fleet.veh[2])
    with pytest.raises(errors.NotAuthorized):
        fleet.outsider.record_message(sid(1), CT, 0, 8)


def test_record_needs_agreed_session(fleet: Fleet) -> None:
    a, b = fleet.veh[0], fleet.veh[1]
    with pytest.raises(errors.UnknownSession):
        a.record_message(sid(1), CT, 0, 8)
    a.commit_key(sid(1), addr(b), KH, 1024, 3600)
    with pytest.raises(errors.SessionNotAgreed) as exc:
        a.record_message(sid(1), CT, 0, 8)
    assert exc.value.state == 1  # COMMITTED


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(-40, 40), st.integers(0, 400)), min_size=1, max_size=8))
def test_consumed_bits_only_grow_and_never_exceed_key(fleet: Fleet, attempts: list[tuple[int, int]]) -> None:
    """Whatever offsets and sizes are thrown at it, the cursor only moves forward
    by accepted records and never passes keyBits."""
    key_bits = 1000
    n = next(_fresh_ids)  # the fleet outlives hypothesis examples; each gets its own session
    a, b = fleet.veh[0], fleet.veh[1]
    a.commit_key(sid(n), addr(b), KH, key_bits, 3600)
    b.confirm_key(sid(n), KH)
    consumed = 0
    for delta, bits in attempts:
        offset = max(0, consumed + delta)
        try:
            a.record_message(sid(n), CT, offset, bits)
            accepted = True
        except (errors.PadOffsetMismatch, errors.PadOverrun, errors.EmptyRecord):
            accepted = False
        expected_ok = offset == consumed and bits > 0 and offset + bits <= key_bits
        assert accepted == expected_ok
        now = a.consumed_bits(sid(n))
        assert now == (consumed + bits if accepted else consumed)
        assert now <= key_bits
        consumed = now
