"""``qkdchain plan`` through typer's runner, on small fast settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qkd.planning.cli import plan
from qkd.planning.costs import load_costs

app = typer.Typer()
app.command()(plan)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_json_keys_and_invariants(tmp_path: Path) -> None:
    code, stdout, _ = run("--scenarios", "6", "--saa-batches", "2", "--json", "--out", str(tmp_path))
    assert code == 0
    doc = json.loads(stdout)
    for key in ("sp_cost", "ev_cost", "ws_cost", "vss", "evpi", "coalition_cost", "shapley", "standalone",
                "saving_pct", "solve_s", "milp", "highs_s", "cost_parts", "first_stage", "saa", "fig6"):  # fmt: skip
        assert key in doc, key
    assert doc["ev_cost"] >= doc["sp_cost"] * (1 - 1e-9) >= doc["ws_cost"] * (1 - 1e-9)
    assert sum(doc["shapley"].values()) == pytest.approx(doc["coalition_cost"])
    for p, share in doc["shapley"].items():
        assert share <= doc["standalone"][p] * (1 + 1e-9)
    alone = sum(doc["standalone"].values())
    assert doc["saving_pct"] == pytest.approx(100 * (alone - doc["coalition_cost"]) / alone)
    assert doc["milp"]["integers"] > 0 and doc["milp"]["variables"] > doc["milp"]["integers"]
    assert doc["axioms"]["in_core"] and doc["coalition_formation"]["stable"]
    for name in ("plan.json", "plan_fig6.png", "plan_fig8.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_plan_tables(tmp_path: Path) -> None:
    code, stdout, _ = run("--topology", "usnet", "--scenarios", "3", "--saa-batches", "0", "--out", str(tmp_path))
    assert code == 0
    assert "Shapley" in stdout and "VSS" in stdout and "EVPI" in stdout and "usnet" in stdout


def test_plan_from_devnet_report(tmp_path: Path) -> None:
    report = tmp_path / "devnet.json"
    report.write_text(json.dumps({"config": {"vehicles": 6, "rsus": 2}, "key_bits": {"consumed": 5120}}))
    code, stdout, _ = run("--devnet-report", str(report), "--vehicles", "10000", "--scenarios", "4",
                          "--saa-batches", "0", "--json", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    doc = json.loads(stdout)
    assert doc["devnet_demand"]["fleet"] == 10_000 and doc["devnet_demand"]["pairs"] == 6
    assert len(json.loads((tmp_path / "demand.json").read_text())) == 3


def _providers_file(tmp_path: Path, destination: str, rate: float) -> Path:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps([{"name": "solo", "qkd_wavelengths": 10, "km_wavelengths": 40, "requests": [
        {"source": "1", "destination": destination, "rate_low_bps": rate, "rate_high_bps": rate}]}]))  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("negative-cost", "InvalidCosts"),
        ("unknown-node", "UnknownNode"),
        ("malformed-topology", "MalformedFile"),
        ("beyond-w-max", "InfeasiblePlan"),
        ("no-requests", "InvalidModel"),
    ],
)
def test_named_errors_exit_2_without_traceback(tmp_path: Path, case: str, error: str) -> None:
    args = ["--scenarios", "2", "--saa-batches", "0", "--out", str(tmp_path)]
    if case == "negative-cost":
        data = load_costs().to_json()
        data["on_demand"]["transmitter"] = -6000
        (tmp_path / "c.json").write_text(json.dumps(data))
        args += ["--costs", str(tmp_path / "c.json")]
    elif case == "unknown-node":
        args += ["--providers", str(_providers_file(tmp_path, "99", 1000.0))]
    elif case == "malformed-topology":
        (tmp_path / "t.json").write_text("[1, 2")
        args += ["--topology", str(tmp_path / "t.json")]
    elif case == "no-requests":
        (tmp_path / "p.json").write_text(json.dumps([{"name": "idle", "qkd_wavelengths": 10, "km_wavelengths": 40,
                                                      "requests": []}]))  # fmt: skip
        args += ["--providers", str(tmp_path / "p.json")]
    else:
        args += ["--providers", str(_providers_file(tmp_path, "14", 1e12))]
    code, stdout, stderr = run(*args)
    assert code == 2
    assert error in stderr and "Traceback" not in stderr + stdout
