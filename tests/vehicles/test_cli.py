"""The CLI end to end: real chains, JSON outputs parsed as a user's script would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts import load_artifact
from vehicles.cli import app

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
    report = _json(["devnet", "--json", "--vehicles", "4", "--pulses", "1500000", "--chain", chain])
    assert report["chain"] == chain
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"]
    assert report["sessions"]["run"] >= 4 and report["sessions"]["aborted"] == 1  # top-ups add sessions
    assert set(report["messages"]) == {"delivered", "refused"}
    assert set(report["key_bits"]) == {"produced", "consumed"}
    assert all(a["caught"] for a in report["attacks"])


def test_devnet_human_output() -> None:
    result = runner.invoke(app, ["devnet", "--vehicles", "3", "--pulses", "1500000"])
    assert result.exit_code == 0, result.output
    assert "mac_invalid" in result.stdout
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
        assert set(r) == {"system", "offered_tps", "tps", "latency_ms", "transactions", "rss_mb"}
        assert r["offered_tps"] in (40, 80) and r["transactions"] >= 20 and r["tps"] > 0
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
        assert r["rss_mb"] > 10
    assert json.loads((tmp_path / "bench_node.json").read_text())["results"] == report["results"]
    assert report["engine_memory"]["transactions"] == 300 and report["engine_memory"]["journal_entries_end"] <= 2
    assert (tmp_path / "bench_node.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["bench", "node", "--systems", "geth"]).exit_code == 2
    assert runner.invoke(app, ["bench", "node", "--loads", "x"]).exit_code == 2


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
    ok = _json(["qkd", "--json", "--decoy", "--pulses", "2000000", "--seed", "1"])
    for key in (
        "qber",
        "sifted_bits",
        "final_bits",
        "leak_ec_bits",
        "efficiency",
        "aborted",
        "abort_reason",
        "time_ms",
    ):
        assert key in ok
    assert not ok["aborted"] and ok["final_bits"] > 256
    eve = _json(
        ["qkd", "--json", "--pulses", "500000", "--eve", "intercept-resend", "--eve-fraction", "1", "--seed", "2"]
    )
    assert eve["aborted"] and eve["abort_reason"] == "qber_above_threshold"


def test_qkd_human_output_and_bad_options() -> None:
    result = runner.invoke(app, ["qkd", "--decoy", "--pulses", "1000000", "--seed", "3", "--link", "free-space"])
    assert result.exit_code == 0, result.output
    assert "final key bits" in result.stdout
    assert runner.invoke(app, ["qkd", "--eve", "bob"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--link", "copper"]).exit_code == 2
    assert runner.invoke(app, ["qkd", "--eve-fraction", "2"]).exit_code == 2


def test_bench_qkd_json(tmp_path: Path) -> None:
    args = ["bench", "qkd", "--json", "--sessions", "2", "--skr-pulses", "1000000", "--out", str(tmp_path)]
    report = _json(args)
    assert report["session"]["sessions"] == 2
    assert set(report["session"]["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(report["cascade"]) == {"0.02", "0.05"} and all(c["corrected"] for c in report["cascade"].values())
    assert [p["distance_km"] for p in report["skr_vs_distance"]][-1] == 150
    assert (tmp_path / "bench_qkd.png").read_bytes()[:4] == b"\x89PNG"
