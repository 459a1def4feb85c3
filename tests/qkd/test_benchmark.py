"""The reconciliation part of ``qkdchain bench qkd``: frame errors and their bound."""

from __future__ import annotations

import pytest

from qkd.benchmark import frame_error_upper, pooled_frame_errors, reconciliation_figures


def test_clopper_pearson_upper_bound_with_no_failure_is_one_minus_alpha_to_one_over_n() -> None:
    for frames in (100, 3_000, 4_000):
        assert frame_error_upper(0, frames) == pytest.approx(1 - 0.05 ** (1 / frames), rel=1e-9)
    assert frame_error_upper(0, 3_000) < 1e-3 < frame_error_upper(1, 3_000)
    assert frame_error_upper(3, 3) == 1.0


def test_frame_errors_are_pooled_over_qbers() -> None:
    rows = reconciliation_figures(8_000, 2, lambda _m: None, qbers=(0.02, 0.05), methods=("ldpc",))
    assert all(r["frame_errors"] == 0 and r["efficiency_mean"] > 1 for r in rows.values())
    pooled = pooled_frame_errors(rows)
    assert pooled == {"frames": 4, "frame_errors": 0, "frame_error_95_upper": frame_error_upper(0, 4)}
    rows["ldpc@0.02"] = {**rows["ldpc@0.02"], "frame_errors": 1}
    assert pooled_frame_errors(rows)["frame_errors"] == 1
