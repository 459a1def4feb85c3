"""The vehicles' commands: ``qkdchain devnet`` and ``bench ibc``. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from node.cli import ChainOpt, RpcOpt, embedded_chain
from qkdchain.console import JsonOpt, OutOpt, emit_json, err, out, run_bench

commands = typer.Typer()  # assembled into the qkdchain app by qkdchain.cli
bench = typer.Typer()


@commands.command()
def devnet(
    vehicles: Annotated[int, typer.Option(min=3, help="Number of vehicles.")] = 6,
    rsus: Annotated[int, typer.Option(min=1, help="Number of roadside units (validators).")] = 2,
    eve_share: Annotated[float, typer.Option(min=0, max=0.99, help="Share of links under intercept-resend.")] = 0.25,
    messages: Annotated[int, typer.Option(min=1, help="Messages per agreed link.")] = 2,
    pulses: Annotated[
        int | None, typer.Option(min=10_000, help="Pulses per QKD session (default: sized from the bound).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed replays the same run.")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where agents keep their key pools (default: a temp dir, removed at the end)."),
    ] = None,
    rpc_url: RpcOpt = None,
    embedded: ChainOpt = "node",
    validators: Annotated[
        int, typer.Option(min=0, max=16, help="Run on a local QBFT network of this many node processes (0: one node).")
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The whole path of a key: onboarding, QKD sessions committed on chain, one-time-pad
    messages, and attacks (tapped links, tampering, replay, pad reuse, revocation)."""
    from vehicles.scenario import ScenarioConfig, ScenarioConfigError, devnet_account, run_on_network, run_scenario

    try:
        config = ScenarioConfig(
            vehicles=vehicles, rsus=rsus, eve_share=eve_share, messages=messages, pulses=pulses, seed=seed
        )
    except ScenarioConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if validators and rpc_url:
        raise typer.BadParameter("--validators starts its own network; it cannot be combined with --rpc-url")
    try:
        if validators:
            with err.status("starting") as status:
                report = run_on_network(config, validators, data_dir, progress=lambda msg: status.update(msg))
        else:  # on our node the scenario's TA is the genesis admin: its registry is the allow list
            admin = devnet_account(seed, "ta").address
            with embedded_chain(rpc_url, embedded, admin=admin) as chain, err.status("starting") as status:
                say = (lambda _m: None) if as_json else (lambda msg: status.update(msg))
                report = run_scenario(chain, config, data_dir, progress=say)
    except ScenarioConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        emit_json(report.to_json())
        return
    sessions = Table(title=f"QKD sessions ({report.chain}, registry {report.registry})")
    for col in ("vehicle", "RSU", "outcome", "QBER", "key bits"):
        sessions.add_column(col)
    for s in report.sessions:
        colour = {"agreed": "green", "aborted": "red", "mismatch": "yellow"}[s.outcome]
        outcome = s.outcome + (f" ({s.abort_reason})" if s.abort_reason else "")
        sessions.add_row(
            s.initiator, s.peer, f"[{colour}]{outcome}[/{colour}]", f"{s.record.qber:.3f}", str(s.key_bits)
        )
    out.print(sessions)
    attacks = Table(title="Attacks")
    for col in ("attack", "expected", "observed"):
        attacks.add_column(col)
    for a in report.attacks:
        mark = "green" if a.caught else "red"
        attacks.add_row(a.attack, a.expected, f"[{mark}]{a.observed}[/{mark}]")
    out.print(attacks)
    data = report.to_json()
    lat = data["latency_ms"]
    refused = ", ".join(f"{k} {v}" for k, v in sorted(data["messages"]["refused"].items()))
    out.print(
        f"sessions: {data['sessions']}; messages delivered {data['messages']['delivered']}, refused: {refused}\n"
        f"{data['transactions']} transactions in {data['wall_time_s']:.2f} s; validation latency "
        f"p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms; key bits produced "
        f"{data['key_bits']['produced']:,}, consumed {data['key_bits']['consumed']:,}"
    )


@bench.command("ibc")
def bench_ibc(
    min_time: Annotated[float, typer.Option(min=0.01, help="Seconds spent on each measurement.")] = 0.5,
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Pseudonym sign / verify / batch verify (sizes 1, 10, 100, 1000) next to ECDSA."""
    from vehicles.ibc.benchmark import plot_ibc_benchmark, run_ibc_benchmark

    saved = run_bench(
        "bench_ibc",
        lambda say: run_ibc_benchmark(min_time_s=min_time, progress=say),
        plot_ibc_benchmark,
        out_dir,
        as_json,
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    table = Table(title="IBC pseudonym signatures vs ECDSA (µs per operation, one core)")
    table.add_column("operation")
    table.add_column("µs", justify="right")
    table.add_column("per second", justify="right")
    rows = [("IBC sign", report["sign_us"]), ("IBC verify", report["verify_us"])]
    rows += [(f"IBC batch verify, batch {k}", v) for k, v in report["batch_verify_us_per_sig"].items()]
    rows += [("ECDSA sign", report["ecdsa_sign_us"]), ("ECDSA verify", report["ecdsa_verify_us"])]
    for name, us in rows:
        table.add_row(name, f"{us:.1f}", f"{1e6 / us:,.0f}")
    out.print(table)
    speedups = ", ".join(f"batch {k}: {v:.2f}x" for k, v in report["batch_speedup"].items())
    out.print(f"batch speed-up over single verify: {speedups}")
    out.print(f"saved {json_path} and {png_path}")
