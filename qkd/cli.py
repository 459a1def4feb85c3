"""The QKD commands: ``qkdchain qkd``, ``plan`` and ``bench qkd``. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qkd.planning.cli import plan
from qkdchain.console import JsonOpt, OutOpt, emit_json, err, out, run_bench

commands = typer.Typer()  # assembled into the qkdchain app by qkdchain.cli
bench = typer.Typer()
commands.command("plan")(plan)


@commands.command()
def qkd(
    distance_km: Annotated[float, typer.Option("--distance-km", min=0, help="Link length in km.")] = 10.0,
    pulses: Annotated[
        int | None, typer.Option(min=1, help="Pulses Alice sends (default: sized for --target-bits).")
    ] = None,
    target_bits: Annotated[int, typer.Option(min=1, help="Final key bits to size the session for.")] = 256,
    link: Annotated[str, typer.Option(help="Channel preset: fibre or free-space.")] = "fibre",
    eve: Annotated[str, typer.Option(help="Eavesdropper: none, intercept-resend or pns.")] = "none",
    eve_fraction: Annotated[float, typer.Option(min=0, max=1, help="Share of pulses Eve attacks.")] = 1.0,
    mu: Annotated[float, typer.Option(min=0.001, help="Mean photon number of signal pulses.")] = 0.5,
    reconciliation: Annotated[str, typer.Option(help="Error correction: ldpc or cascade.")] = "ldpc",
    eps_sec: Annotated[float, typer.Option(min=1e-300, max=0.5, help="Secrecy parameter.")] = 1e-10,
    eps_cor: Annotated[float, typer.Option(min=1e-300, max=0.5, help="Correctness parameter.")] = 1e-15,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulation (same seed, same counts).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one decoy-state BB84 session (quantum phase, sifting, estimation, finite-key
    bounds, reconciliation, verification, privacy amplification) and print its record."""
    import secrets
    from dataclasses import replace

    from qkd.bb84 import DecoyProtocol, Eve, EveConfig
    from qkd.channel import fibre, free_space_v2i
    from qkd.errors import ConfigError
    from qkd.session import SessionConfig, run_session

    presets = {"fibre": fibre, "free-space": free_space_v2i}
    if link not in presets:
        raise typer.BadParameter(f"--link must be one of {', '.join(presets)}")
    try:
        base = DecoyProtocol()
        config = SessionConfig(
            pulses=pulses,
            channel=presets[link](distance_km),
            protocol=replace(base, intensities=(mu, *base.intensities[1:])),
            eve=EveConfig(Eve(eve), eve_fraction),
            eps_sec=eps_sec,
            eps_cor=eps_cor,
            reconciliation=reconciliation,  # type: ignore[arg-type]
            target_bits=target_bits,
            seed=seed,
        )
    except ValueError as exc:  # ConfigError, or an unknown --eve value
        raise typer.BadParameter(str(exc)) from exc
    # The session id names the session on chain; a fresh one unless the run is seeded.
    session_id = seed.to_bytes(32, "big") if seed is not None else secrets.token_bytes(32)
    try:
        with err.status(f"QKD session over {distance_km} km of {link}"):
            outcome = run_session(config, session_id)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    r = outcome.record
    if as_json:
        emit_json(r.to_json())
        return
    table = Table(title=f"Decoy BB84 over {distance_km} km ({link}), {r.pulses:,} pulses")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("detections", f"{r.detections:,}"),
        ("key-basis bits / test-basis bits", f"{r.sifted_bits:,} / {r.sample_bits:,}"),
        ("QBER test basis / key basis (true)", f"{r.qber:.4f} / {r.true_qber:.4f}"),
        ("single-photon share, phase error", f"{r.single_photon_fraction:.3f}, {r.e1_upper:.4f}"),
        (f"EC leak ({r.reconciliation}), efficiency f", f"{r.leak_ec_bits:,}, {r.efficiency:.3f}"),
        ("final key bits (Lim bound)", f"{r.final_bits:,} ({r.lim_bound_bits:,})"),
        ("eps_sec / eps_cor (verification bits)", f"{r.eps_sec:.1e} / {r.eps_cor:.1e} ({r.verification_bits})"),
        ("round trips / classical bits", f"{r.round_trips:,} / {r.channel.get('bits', 0):,}"),
        ("time (ms)", ", ".join(f"{k} {v:.1f}" for k, v in r.time_ms.items())),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    if r.aborted:
        out.print(f"[red]aborted: {r.abort_reason}[/red] ({r.abort_detail})")
    else:
        out.print("[green]keys agree[/green]" if outcome.alice_key is not None else "")


@bench.command("qkd")
def bench_qkd(
    sessions: Annotated[int, typer.Option(min=1, help="Sessions over 10 km per reconciliation method.")] = 8,
    rtt_ms: Annotated[float, typer.Option("--rtt-ms", min=0, help="Round-trip time of the classical link.")] = 5.0,
    reconciliation_trials: Annotated[int, typer.Option(min=1, help="Blocks per QBER and method.")] = 10,
    frame_bits: Annotated[
        int, typer.Option(min=64, help="Bits per block of the reconciliation figures (one LDPC frame up to 65,536).")
    ] = 30_000,
    ldpc_frames: Annotated[
        int, typer.Option(min=0, help="LDPC alone on this many more frames per QBER (residual frame error).")
    ] = 0,
    distances: Annotated[str, typer.Option(help="Distances (km) of the key-rate curves, comma-separated.")] = ",".join(
        str(d) for d in range(0, 151, 10)
    ),
    simulated: Annotated[
        str, typer.Option(help="Sessions to run on the curves, as PULSES@KM, comma-separated ('' for none).")
    ] = "1e7@0,1e7@10,1e7@20,1e7@30,1e8@50,1e8@70",
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Finite-key sessions over 10 km (LDPC and Cascade), reconciliation at 1-5 % QBER,
    and the finite-key rate vs distance for 10^6-10^10 pulses against Lim's bound."""
    from qkd.benchmark import plot_qkd_benchmark, run_qkd_benchmark

    try:
        kms = [int(d) for d in distances.split(",") if d.strip()]
        points = [(int(float(p)), int(k)) for p, k in (x.split("@") for x in simulated.split(",") if x.strip())]
    except ValueError as exc:
        raise typer.BadParameter(f"--distances / --simulated: {exc}") from exc

    saved = run_bench(
        "bench_qkd",
        lambda say: run_qkd_benchmark(
            sessions=sessions,
            rtt_ms=rtt_ms,
            reconciliation_bits=frame_bits,
            reconciliation_trials=reconciliation_trials,
            ldpc_frames=ldpc_frames,
            distances=kms,
            simulated=points,
            progress=say,
        ),
        plot_qkd_benchmark,
        out_dir,
        as_json,
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    for s in report["sessions"]:
        c, link = s["compute_ms"], s["on_link_ms"]
        out.print(
            f"{s['reconciliation']}: {s['sessions']} sessions of {s['pulses']:,} pulses over 10 km, "
            f"{s['with_256_final_bits']} with >= 256 final bits (p50 {s['final_bits']['p50']:.0f}), "
            f"final/Lim >= {s['final_over_lim_bound_min']}, f {s['efficiency_mean']}, compute p50 {c['p50']:.0f} ms "
            f"p99 {c['p99']:.0f} ms, round trips <= {s['round_trips']['max']}, on a {report['rtt_ms']} ms RTT link "
            f"p50 {link['p50']:.0f} ms"
        )
    for r in [*report["reconciliation"].values(), *report["ldpc_frames"].values()]:
        out.print(
            f"{r['method']} at QBER {r['qber']:.0%}, {r['trials']} blocks of {r['bits']:,} bits: "
            f"f {r['efficiency_mean']} "
            f"(max {r['efficiency_max']}, with frame tags {r['efficiency_with_frame_tags_mean']}), "
            f"frame errors {r['frame_errors']} (95 % upper bound {r['frame_error_95_upper']:.2g}, "
            f"{r['wrong_words_caught']} wrong words caught), round trips <= {r['round_trips_max']}, "
            f"{r['bits_per_s']:,} bits/s"
        )
    out.print(f"saved {json_path} and {png_path}")
