"""The ``qkdchain`` command line. Thin: parse options, call library code, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from node.chain import Chain, EthTesterChain, NodeChain, RpcChain
from node.errors import NodeError

app = typer.Typer(
    help="qkdchain: QKD key registry on a permissioned Ethereum ledger for the Internet of Vehicles.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]
RpcOpt = Annotated[
    str | None,
    typer.Option("--rpc-url", help="Use this Ethereum JSON-RPC endpoint instead of the embedded chain."),
]
ChainOpt = Annotated[
    str,
    typer.Option(
        "--chain",
        help="Embedded chain: 'node' (our node, in process, over JSON-RPC on loopback) or "
        "'eth-tester' (the py-evm reference).",
    ),
]


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def _chain(rpc_url: str | None, embedded: str = "node", admin: str | None = None) -> Iterator[Chain]:
    """The chain a command runs on; ``admin`` turns on the node's permissioning with that TA."""
    if embedded not in ("node", "eth-tester"):
        raise typer.BadParameter("--chain must be 'node' or 'eth-tester'")
    try:
        chain: Chain
        if rpc_url:
            chain = RpcChain(rpc_url)
        elif embedded == "eth-tester":
            chain = EthTesterChain()
        else:
            chain = NodeChain(admin=admin, permissioned=admin is not None)
    except NodeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        yield chain
    finally:
        chain.close()


@app.command("compile")
def compile_cmd(as_json: JsonOpt = False) -> None:
    """Compile contracts/*.sol with solcjs through py-solc-x and write contracts/build/*.json."""
    from contracts.compiler import CompilerError, compile_all

    try:
        paths = compile_all()
    except CompilerError as exc:
        err.print(f"[red]compile failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    from contracts import load_artifact

    rows = []
    for path in paths:
        art = load_artifact(path.stem)
        rows.append(
            {
                "contract": art.contract_name,
                "artifact": str(path),
                "compiler": art.compiler_version,
                "evm_version": art.evm_version,
                "bytecode_bytes": len(art.bytecode),
                "deployed_bytes": len(art.deployed_bytecode),
                "source_sha256": art.source_sha256,
            }
        )
    if as_json:
        _emit_json({"artifacts": rows})
        return
    for r in rows:
        out.print(
            f"[green]compiled[/green] {r['contract']} -> {r['artifact']} "
            f"(solc {r['compiler']}, {r['evm_version']}, {r['deployed_bytes']} bytes deployed)"
        )


@app.command()
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
        Path | None, typer.Option("--data-dir", help="Where agents keep their key pools (default: a temp dir).")
    ] = None,
    rpc_url: RpcOpt = None,
    embedded: ChainOpt = "node",
    as_json: JsonOpt = False,
) -> None:
    """The whole path of a key: onboarding, QKD sessions committed on chain, one-time-pad
    messages, and attacks (tapped links, tampering, replay, pad reuse, revocation)."""
    from vehicles.scenario import ScenarioConfig, ScenarioConfigError, devnet_account, run_scenario

    try:
        config = ScenarioConfig(
            vehicles=vehicles, rsus=rsus, eve_share=eve_share, messages=messages, pulses=pulses, seed=seed
        )
    except ScenarioConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    # on our node the scenario's TA is the genesis admin: its registry is the allow list
    with _chain(rpc_url, embedded, admin=devnet_account(seed, "ta").address) as chain:
        try:
            if as_json:
                report = run_scenario(chain, config, data_dir)
                _emit_json(report.to_json())
                return
            with err.status("starting") as status:
                report = run_scenario(chain, config, data_dir, progress=lambda msg: status.update(msg))
        except ScenarioConfigError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
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


@app.command("node")
def node_cmd(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Chain database directory (resumed if it exists).")
    ] = Path("node-data"),
    host: Annotated[str, typer.Option(help="Interface for JSON-RPC.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="JSON-RPC port (0: any free port).")] = 8545,
    chain_id: Annotated[int, typer.Option("--chain-id", min=1, help="Chain id of a new chain.")] = 1337,
    genesis_file: Annotated[
        Path | None, typer.Option("--genesis", help="Genesis JSON (chainId, alloc, validators, admin, operators, ...).")
    ] = None,
    admin: Annotated[
        str | None, typer.Option(help="Genesis admin (TA) of a new dev chain; its first deployment is the allow list.")
    ] = None,
    open_chain: Annotated[
        bool, typer.Option("--open", help="No account permissioning: anyone funded may send (a dev chain).")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Processes for signature recovery (default: cores).")
    ] = None,
) -> None:
    """Run a node: JSON-RPC over HTTP, blocks in a SQLite file, structured JSON logs on stderr.

    The validator key comes from QKDCHAIN_VALIDATOR_KEY (hex); without it the well-known
    dev key is used. A new dev chain funds the well-known dev account (anvil's first).
    """
    import logging
    import os
    import signal
    import threading
    import time as _time

    from coincurve import PrivateKey
    from eth_account import Account

    from node.admission import Genesis
    from node.chain import DEV_FAUCET_KEY, DEV_VALIDATOR_KEY
    from node.core import Node, address_of
    from node.logs import JsonLogFormatter
    from node.rpc import RpcServer

    sys.setswitchinterval(0.001)  # admission, proposer and RPC threads trade the GIL every 1 ms, not 5
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    log = logging.getLogger("qkdchain.node")
    key_hex = os.environ.get("QKDCHAIN_VALIDATOR_KEY")
    key = bytes.fromhex(key_hex.removeprefix("0x")) if key_hex else DEV_VALIDATOR_KEY
    if not key_hex:
        log.warning("using the well-known dev validator key; set QKDCHAIN_VALIDATOR_KEY for a real chain")
    genesis: Genesis | None = None
    if genesis_file is not None:
        try:
            genesis = Genesis.from_json(json.loads(genesis_file.read_text()))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"--genesis: {exc}") from exc
    elif not (data_dir / "chain.sqlite").exists():
        faucet = Account.from_key(DEV_FAUCET_KEY).address.lower()
        validator = address_of(PrivateKey(key))
        genesis = Genesis(
            chain_id=chain_id,
            alloc={faucet: 10**30},
            validators=(validator,),
            admin=(admin or faucet).lower(),
            operators=(faucet, validator),
            permissioned=not open_chain,
            timestamp=int(_time.time()),
        )
    try:
        node = Node(data_dir, genesis, key, workers=workers)
    except NodeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    node.subscribe(
        lambda block, receipts: log.info(
            "sealed block",
            extra={"block": block.number, "txs": len(receipts), "gas_used": block.header.gas_used},
        )
    )
    try:
        server = RpcServer(node, host, port).start()
    except OSError as exc:
        node.close()
        err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc}")
        raise typer.Exit(2) from exc
    log.info(
        "node started",
        extra={
            "url": server.url,
            "chain_id": node.chain_id,
            "head": node.head.number,
            "proposer": node.proposer,
            "data_dir": str(data_dir),
            "permissioned": node.genesis.permissioned,
            "registry": node.genesis.registry,
        },
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", extra={"head": node.head.number})
    server.close()
    node.close()


@app.command()
def gas(
    batch_size: Annotated[int, typer.Option(min=1, max=200, help="Sessions per batch call.")] = 10,
    rpc_url: RpcOpt = None,
    embedded: ChainOpt = "node",
    as_json: JsonOpt = False,
) -> None:
    """Report the gas used by every KeyRegistry function (measured, on the chosen chain)."""
    from node.gas import measure_gas

    with _chain(rpc_url, embedded) as chain:
        rows = measure_gas(chain, batch_size)
    if as_json:
        _emit_json({"chain": chain.name, "gas": [r.__dict__ for r in rows]})
        return
    table = Table(title=f"KeyRegistry gas on {chain.name}")
    table.add_column("function")
    table.add_column("gas used", justify="right")
    table.add_column("note")
    for r in rows:
        table.add_row(r.function, f"{r.gas_used:,}", r.note)
    out.print(table)


@app.command()
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
        _emit_json(r.to_json())
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
        ("eps_sec / eps_cor", f"{r.eps_sec:.1e} / {r.eps_cor:.1e}"),
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


from qkd.planning.cli import plan  # noqa: E402

app.command("plan")(plan)

bench_app = typer.Typer(help="Benchmarks: print figures, save JSON and a PNG plot.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

OutOpt = Annotated[Path, typer.Option("--out", help="Directory for the JSON report and the PNG plot.")]


def _save_report(report: dict[str, Any], out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
    return path


def _run_bench(
    name: str,
    run: Callable[[Callable[[str], None]], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], Path],
    out_dir: Path,
    as_json: bool,
) -> tuple[dict[str, Any], Path, Path] | None:
    """Run a benchmark with progress on stderr, save ``name``.json and .png; ``None`` if JSON was printed."""
    with err.status("benchmarking") as status:
        report = run(lambda message: status.update(message))
    json_path = _save_report(report, out_dir, name)
    png_path = plot(report, out_dir / f"{name}.png")
    if as_json:
        _emit_json(report)
        return None
    return report, json_path, png_path


@bench_app.command("ibc")
def bench_ibc(
    min_time: Annotated[float, typer.Option(min=0.01, help="Seconds spent on each measurement.")] = 0.5,
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Pseudonym sign / verify / batch verify (sizes 1, 10, 100, 1000) next to ECDSA."""
    from vehicles.ibc.benchmark import plot_ibc_benchmark, run_ibc_benchmark

    saved = _run_bench(
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


@bench_app.command("qkd")
def bench_qkd(
    sessions: Annotated[int, typer.Option(min=1, help="Sessions over 10 km per reconciliation method.")] = 8,
    rtt_ms: Annotated[float, typer.Option("--rtt-ms", min=0, help="Round-trip time of the classical link.")] = 5.0,
    reconciliation_trials: Annotated[int, typer.Option(min=1, help="Blocks per QBER and method.")] = 10,
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

    saved = _run_bench(
        "bench_qkd",
        lambda say: run_qkd_benchmark(
            sessions=sessions,
            rtt_ms=rtt_ms,
            reconciliation_trials=reconciliation_trials,
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
    for r in report["reconciliation"].values():
        out.print(
            f"{r['method']} at QBER {r['qber']:.0%}: f {r['efficiency_mean']} (max {r['efficiency_max']}), "
            f"FER {r['frame_error_rate']}, round trips <= {r['round_trips_max']}, {r['bits_per_s']:,} bits/s"
        )
    out.print(f"saved {json_path} and {png_path}")


@bench_app.command("node")
def bench_node(
    loads: Annotated[str, typer.Option(help="Offered loads in tx/s, comma-separated.")] = "50,1000,4000,16000",
    seconds: Annotated[float, typer.Option(min=0.1, help="Offered duration of each load point.")] = 2.0,
    vehicles: Annotated[int, typer.Option(min=2, help="Vehicle accounts sending transactions.")] = 64,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: eth-tester, node, node-rpc, anvil-rpc.")
    ] = "eth-tester,node,node-rpc,anvil-rpc",
    memory_transactions: Annotated[
        int, typer.Option(min=0, help="Transactions of the engine-only flat-memory run (0 skips it).")
    ] = 20_000,
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Validated TPS and submission-to-receipt latency vs offered load, for the reference,
    our node (in process and over JSON-RPC) and anvil, in one run."""
    from node.benchmark import SYSTEMS, BenchConfig, plot_node_benchmark, run_node_benchmark

    try:
        load_list = tuple(int(x) for x in loads.split(",") if x.strip())
    except ValueError as exc:
        raise typer.BadParameter("--loads must be comma-separated integers") from exc
    chosen = tuple(x.strip() for x in systems.split(",") if x.strip())
    if not load_list or any(x <= 0 for x in load_list):
        raise typer.BadParameter("--loads must be positive integers")
    if unknown := [x for x in chosen if x not in SYSTEMS]:
        raise typer.BadParameter(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    config = BenchConfig(
        loads=load_list, seconds=seconds, vehicles=vehicles, systems=chosen, memory_transactions=memory_transactions
    )
    saved = _run_bench(
        "bench_node", lambda say: run_node_benchmark(config, progress=say), plot_node_benchmark, out_dir, as_json
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    table = Table(title="Validated transactions: KeyRegistry.commitKey, pre-signed, many vehicles")
    for col in ("system", "offered tx/s", "tx/s", "p50 ms", "p95 ms", "p99 ms", "transactions", "RSS MB"):
        table.add_column(col, justify="right" if col != "system" else "left")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(
            r["system"], f"{r['offered_tps']:,}", f"{r['tps']:,.0f}", f"{lat['p50']:.2f}", f"{lat['p95']:.2f}",
            f"{lat['p99']:.2f}", f"{r['transactions']:,}", f"{r['rss_mb']:.0f}",
        )  # fmt: skip
    out.print(table)
    for name, why in report["skipped"].items():
        out.print(f"[yellow]skipped {name}:[/yellow] {why}")
    if memory := report["engine_memory"]:
        out.print(
            f"revm engine alone, {memory['transactions']:,} transactions that do not grow state: "
            f"{memory['tx_per_s']:,} tx/s, RSS {memory['rss_mb_start']} -> {memory['rss_mb_end']} MB, "
            f"journal entries left {memory['journal_entries_end']}"
        )
    out.print(f"saved {json_path} and {png_path}")


if __name__ == "__main__":
    app()
