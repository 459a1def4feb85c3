"""The CLI end to end: real chains, JSON outputs parsed as a user's script would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts import load_artifact
from qkdchain.cli import app

runner = CliRunner()


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_on_every_command() -> None:
    for cmd in ([], ["compile"], ["devnet"], ["gas"], ["node"], ["bench", "node"]):
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output


@pytest.mark.parametrize("chain", ["node", "eth-tester"])
def test_devnet_json_on_embedded_chain(chain: str) -> None:
    report = _json(["devnet", "--json", "--vehicles", "4", "--chain", chain])
    assert report["chain"] == chain
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"]
    assert report["sessions"]["run"] >= 4 and report["sessions"]["aborted"] == 1  # top-ups add sessions
    assert set(report["messages"]) == {"delivered", "refused"}
    assert set(report["key_bits"]) == {"produced", "consumed"}
    assert all(a["caught"] for a in report["attacks"])


def test_devnet_human_output() -> None:
    result = runner.invoke(app, ["devnet", "--vehicles", "3"])
    assert result.exit_code == 0, result.output
    assert "ciphertext_mismatch" in result.stdout
    assert "sender_not_party" in result.stdout
    assert "p50" in result.stdout


def test_devnet_rejects_bad_sizes() -> None:
    assert runner.invoke(app, ["devnet", "--vehicles", "2"]).exit_code == 2
    assert runner.invoke(app, ["devnet", "--pulses", "10"]).exit_code == 2


def test_devnet_unreachable_rpc_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["devnet", "--rpc-url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "no Ethereum JSON-RPC endpoint answers" in result.stderr


def test_devnet_rejects_unknown_chain() -> None:
    assert runner.invoke(app, ["devnet", "--chain", "besu"]).exit_code == 2


def test_bench_node_json(tmp_path: Path) -> None:
    args = [
        "bench",
        "node",
        "--json",
        "--loads",
        "40,80",
        "--seconds",
        "0.5",
        "--vehicles",
        "4",
        "--memory-transactions",
        "300",
    ]
    report = _json([*args, "--systems", "eth-tester,node,node-rpc,anvil-rpc", "--out", str(tmp_path)])
    systems = {r["system"] for r in report["results"]}
    assert systems | set(report["skipped"]) == {"eth-tester", "node", "node-rpc", "anvil-rpc"}
    for r in report["results"]:
        assert set(r) == {"system", "offered_tps", "tps", "latency_ms", "transactions", "refusals", "rss_mb"}
        assert r["refusals"] == 0  # far below capacity: no back-pressure
        assert r["offered_tps"] in (40, 80) and r["transactions"] >= 20 and r["tps"] > 0
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
        assert r["rss_mb"] > 10
    assert json.loads((tmp_path / "bench_node.json").read_text())["results"] == report["results"]
    assert report["engine_memory"]["transactions"] == 300 and report["engine_memory"]["journal_entries_end"] <= 2
    assert report["recovery_tps"]["one_core"] > 0 and report["recovery_tps"]["all_cores"] > 0
    for name in systems:
        summary = report["summary"][name]
        peak_point = max((r for r in report["results"] if r["system"] == name), key=lambda r: r["tps"])
        assert summary["peak_tps"] == peak_point["tps"] and summary["highest_load"]["offered_tps"] == 80
        # the overload point: 4x the measured peak, as many transactions as the peak point
        (over,) = [o for o in report["overload"] if o["system"] == name]
        assert over["offered_tps"] == round(4 * peak_point["tps"]) and over["times_peak"] == 4
        assert over["transactions"] == peak_point["transactions"] and over["tps"] > 0
        assert summary["overload"]["tps_vs_peak"] == round(over["tps"] / peak_point["tps"], 3)
        # bracketed by the peak point's load, as many transactions, just before and after
        side = over["bracket"]
        assert side["offered_tps"] == peak_point["offered_tps"] and side["before_tps"] > 0 and side["after_tps"] > 0
        assert side["tps"] == round((side["before_tps"] + side["after_tps"]) / 2, 1)
        assert summary["overload"]["tps_vs_bracket"] == round(over["tps"] / side["tps"], 3)
    assert (tmp_path / "bench_node.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["bench", "node", "--systems", "geth"]).exit_code == 2
    assert runner.invoke(app, ["bench", "node", "--loads", "x"]).exit_code == 2


def test_bench_node_long_json(tmp_path: Path) -> None:
    args = ["bench", "node", "--long", "3000", "--long-rate", "20000", "--window-s", "0.3", "--vehicles", "8"]
    report = _json([*args, "--json", "--out", str(tmp_path)])
    assert report["included"] == 3000 and report["config"]["transactions"] == 3000
    assert report["refusals"] > 0  # offered far past capacity: the node pushed back, nothing was lost
    assert report["windows"][-1]["included"] == 3000 and len(report["windows"]) >= 2
    assert report["storage_slots_per_tx"] >= 1  # each commitKey is a new session in the registry
    assert report["window_tps"]["min"] <= report["window_tps"]["mean"] <= report["window_tps"]["max"]
    assert (tmp_path / "bench_node_long.png").read_bytes()[:4] == b"\x89PNG"


def test_gas_json() -> None:
    report = _json(["gas", "--json", "--batch-size", "4"])
    names = [row["function"] for row in report["gas"]]
    for fn in ("deploy", "commitKey", "confirmKey", "recordMessage", "commitKeys", "revokeIdentity"):
        assert fn in names
    assert all(row["gas_used"] > 21000 for row in report["gas"])


@pytest.mark.filterwarnings("ignore")
def test_compile_json_reproduces_committed_artifact() -> None:
    before = load_artifact()
    report = _json(["compile", "--json"])
    assert report["artifacts"][0]["contract"] == "KeyRegistry"
    assert load_artifact() == before


def test_bench_ibc_json(tmp_path: Path) -> None:
    report = _json(["bench", "ibc", "--json", "--min-time", "0.01", "--out", str(tmp_path)])
    for key in ("sign_us", "verify_us", "ecdsa_sign_us", "ecdsa_verify_us"):
        assert report[key] > 0
    assert set(report["batch_verify_us_per_sig"]) == {"1", "10", "100", "1000"}
    assert json.loads((tmp_path / "bench_ibc.json").read_text()) == report
    assert (tmp_path / "bench_ibc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_qkd_json_keys_and_outcomes() -> None:
    ok = _json(["qkd", "--json", "--seed", "1"])  # sized from the bound for 256 bits
    for key in (
        "qber",
        "sifted_bits",
        "final_bits",
        "leak_ec_bits",
        "efficiency",
        "aborted",
        "abort_reason",
        "time_ms",
        "eps_sec",
        "eps_cor",
        "round_trips",
        "reconciliation",
    ):
        assert key in ok
    assert not ok["aborted"] and ok["final_bits"] >= 256 and ok["final_bits"] <= ok["lim_bound_bits"]
    assert ok["eps_sec"] == 1e-10 and 0 < ok["eps_cor"] <= 1e-15 and ok["round_trips"] <= 10
    assert ok["reconciliation"] == "ldpc"
    cascade = _json(["qkd", "--json", "--seed", "1", "--reconciliation", "cascade", "--pulses", "8000000"])
    assert cascade["reconciliation"] == "cascade" and cascade["round_trips"] > 100
    eve = _json(
        ["qkd", "--json", "--pulses", "500000", "--eve", "intercept-resend", "--eve-fraction", "1", "--seed", "2"]
    )
    assert eve["aborted"] and eve["abort_reason"] == "qber_above_threshold"


def test_qkd_human_output_and_bad_options() -> None:
    result = runner.invoke(app, ["qkd", "--seed", "3", "--link", "free-space"])
    assert result.exit_code == 0, result.output
    assert "final key bits" in result.stdout
    assert runner.invoke(app, ["qkd", "--eve", "bob"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--link", "copper"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--eve-fraction", "2"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--reconciliation", "guess"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--distance-km", "900"]).exit_code == 2  # no key within reach


def test_bench_qkd_json(tmp_path: Path) -> None:
    args = ["bench", "qkd", "--json", "--sessions", "1", "--reconciliation-trials", "1", "--out", str(tmp_path)]
    report = _json([*args, "--distances", "0,40", "--simulated", "1e6@0", "--rtt-ms", "5", "--frame-bits", "8000"])
    assert [s["reconciliation"] for s in report["sessions"]] == ["ldpc", "cascade"]
    assert {r["bits"] for r in report["reconciliation"].values()} == {8000}
    for s in report["sessions"]:
        assert set(s["compute_ms"]) == set(s["on_link_ms"]) == {"p50", "p95", "p99"}
        assert s["on_link_ms"]["p50"] >= s["compute_ms"]["p50"]
    assert {r["qber"] for r in report["reconciliation"].values()} == {0.01, 0.02, 0.03, 0.05}
    points = report["key_rate_vs_distance"]
    assert [p["distance_km"] for p in points] == [0, 40]
    bounds = points[0]["finite_key_bound_bits_per_pulse"]
    assert set(bounds) == {"1000000", "10000000", "100000000", "1000000000", "10000000000"}
    assert bounds["10000000000"] <= points[0]["three_intensity_limit_bits_per_pulse"]
    assert points[0]["three_intensity_limit_bits_per_pulse"] <= points[0]["infinite_decoy_bits_per_pulse"]
    assert points[0]["simulated"][0]["pulses"] == 10**6
    assert (tmp_path / "bench_qkd.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["bench", "qkd", "--frame-bits", "10"]).exit_code == 2
