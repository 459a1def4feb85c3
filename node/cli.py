"""The node's commands: ``qkdchain node``, ``gas`` and ``bench node``. Thin: parse, call, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from node.errors import NodeError
from qkdchain.console import JsonOpt, OutOpt, emit_json, err, out, run_bench

if TYPE_CHECKING:  # the chain clients import web3 and eth_account: not on `qkdchain node`'s start-up path
    from node.block import Block, SealedReceipt
    from node.client.chain import Chain
    from node.network import NetworkNode

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

commands = typer.Typer()  # assembled into the qkdchain app by qkdchain.cli
bench = typer.Typer()
network_app = typer.Typer(help="A local QBFT validator network: one node process per validator.", no_args_is_help=True)
commands.add_typer(network_app, name="network")
NetDirOpt = Annotated[Path, typer.Option("--dir", help="Where the network's keys, genesis, data and logs live.")]


@contextmanager
def embedded_chain(rpc_url: str | None, embedded: str = "node", admin: str | None = None) -> Iterator[Chain]:
    """The chain a command runs on; ``admin`` turns on the node's permissioning with that TA."""
    if embedded not in ("node", "eth-tester"):
        raise typer.BadParameter("--chain must be 'node' or 'eth-tester'")
    from node.client.chain import EthTesterChain, NodeChain, RpcChain

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


@commands.command("node")
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
    key_file: Annotated[
        Path | None,
        typer.Option("--validator-key-file", help="File with the node's secp256k1 key (hex); overrides the env."),
    ] = None,
    peers: Annotated[
        Path | None, typer.Option("--peers", help="Static peers (JSON): join a QBFT validator network.")
    ] = None,
    p2p_host: Annotated[str, typer.Option("--p2p-host", help="Interface for the validator network.")] = "127.0.0.1",
    p2p_port: Annotated[int, typer.Option("--p2p-port", min=0, max=65535, help="libp2p port (with --peers).")] = 30303,
    round_timeout: Annotated[
        float, typer.Option("--round-timeout", min=0.05, help="First QBFT round timer (s), doubling per round.")
    ] = 2.0,
    dev: Annotated[
        bool, typer.Option("--dev", help="Answer the evm_* dev methods (move the clock, seal on demand).")
    ] = False,
    cors_origins: Annotated[
        str, typer.Option("--cors-origins", help="Browser origins allowed to call, comma-separated ('*': any).")
    ] = "",
    history_blocks: Annotated[
        int | None,
        typer.Option("--history-blocks", min=1, help="Keep the state of only this many recent blocks (default: all)."),
    ] = None,
    backlog_wait_ms: Annotated[
        float,
        typer.Option(
            "--backlog-wait-ms",
            min=0,
            max=60_000,
            help="Back-pressure: the mempool holds what the node executes in this long; beyond, -32005.",
        ),
    ] = 250.0,
    min_backlog: Annotated[
        int,
        typer.Option("--min-backlog", min=1, max=100_000, help="Back-pressure: the backlog allowed whatever the rate."),
    ] = 256,
) -> None:
    """Run a node: JSON-RPC over HTTP and WebSocket (one port), blocks in a SQLite file, structured JSON logs on stderr.

    Alone, the node is its chain's only validator and seals blocks itself. With --peers it
    joins a validator network: QBFT among the genesis validators over libp2p (a follower
    if its key is not a validator). The key comes from --validator-key-file or
    QKDCHAIN_VALIDATOR_KEY (hex); without either, the well-known dev key is used. A new
    dev chain funds the well-known dev account (anvil's first).
    """
    import logging
    import os
    import signal
    import threading
    import time as _time

    from coincurve import PrivateKey

    from node.admission import Genesis
    from node.backpressure import BackpressureConfig
    from node.core import Node, address_of
    from node.devkeys import DEV_FAUCET_KEY, DEV_VALIDATOR_KEY
    from node.logs import JsonLogFormatter
    from node.server import RpcServer

    sys.setswitchinterval(0.001)  # admission, proposer and RPC threads trade the GIL every 1 ms, not 5
    # py_ecc (imported by eth_keys, under eth_account) raises the recursion limit to 100,000 for
    # the whole process; nothing the node runs needs it, and any recursive C parser would then
    # overflow the thread's stack instead of raising. Python's default is restored here.
    sys.setrecursionlimit(1_000)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    log = logging.getLogger("qkdchain.node")
    key_hex = os.environ.get("QKDCHAIN_VALIDATOR_KEY")
    if key_file is not None:
        try:
            key_hex = key_file.read_text().strip()
        except OSError as exc:
            raise typer.BadParameter(f"--validator-key-file: {exc}") from exc
    try:
        key = bytes.fromhex(key_hex.removeprefix("0x")) if key_hex else DEV_VALIDATOR_KEY
        PrivateKey(key)
    except ValueError as exc:
        raise typer.BadParameter(f"the validator key is not a 32-byte secp256k1 key in hex: {exc}") from exc
    if not key_hex:
        log.warning("using the well-known dev validator key; set QKDCHAIN_VALIDATOR_KEY for a real chain")
    genesis: Genesis | None = None
    if genesis_file is not None:
        try:
            genesis = Genesis.from_json(json.loads(genesis_file.read_text()))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"--genesis: {exc}") from exc
    elif not (data_dir / "chain.sqlite").exists():
        faucet = address_of(PrivateKey(bytes.fromhex(DEV_FAUCET_KEY[2:])))
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
    network: NetworkNode | None = None
    try:
        backpressure = BackpressureConfig(target_wait_s=backlog_wait_ms / 1000, floor=min_backlog)
        node = Node(data_dir, genesis, key, workers=workers, consensus=peers is not None,
                    history_blocks=history_blocks, backpressure=backpressure)  # fmt: skip
        if peers is not None:
            from node.network import NetworkConfig, NetworkNode
            from node.p2p.libp2p import Libp2pTransport, load_peers

            transport = Libp2pTransport(key, p2p_host, p2p_port, load_peers(peers))
            network = NetworkNode(node, transport, key, NetworkConfig(round_timeout_s=round_timeout)).start()
    except NodeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc

    def sealed(block: Block, receipts: list[SealedReceipt]) -> None:
        if network is None or not network.is_validator:  # a validator logs its blocks as it decides them
            extra = {"block": block.number, "txs": len(receipts), "gas_used": block.header.gas_used}
            log.info("sealed block", extra=extra)

    node.subscribe(sealed)
    try:
        origins = tuple(o.strip() for o in cors_origins.split(",") if o.strip())
        server = RpcServer(node, host, port, dev=dev, cors_origins=origins).start()
    except OSError as exc:
        node.close()
        err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc}")
        raise typer.Exit(2) from exc
    log.info(
        "node started",
        extra={
            "url": server.url,
            "ws_url": server.ws_url,
            "dev": dev,
            "chain_id": node.chain_id,
            "head": node.head.number,
            "proposer": node.proposer,
            "data_dir": str(data_dir),
            "permissioned": node.genesis.permissioned,
            "network": None
            if peers is None
            else {"p2p_port": p2p_port, "validators": list(node.tip.header.validators)},
            "registry": node.genesis.registry,
        },
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", extra={"head": node.head.number})
    server.close()
    if network is not None:
        network.close()
    node.close()


@network_app.command("up")
def network_up(
    validators: Annotated[int, typer.Option(min=1, max=64, help="Validator nodes.")] = 4,
    followers: Annotated[int, typer.Option(min=0, max=64, help="Follower (non-validator) nodes.")] = 0,
    directory: NetDirOpt = Path("network"),
    round_timeout: Annotated[float, typer.Option("--round-timeout", min=0.05, help="QBFT round timer (s).")] = 2.0,
    admin: Annotated[str | None, typer.Option(help="Genesis admin (TA) of a new network.")] = None,
    permissioned: Annotated[bool, typer.Option(help="Enforce account permissioning from the registry.")] = False,
    dev: Annotated[bool, typer.Option("--dev", help="Nodes answer the evm_* dev methods.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a local network of separate node processes and print their JSON-RPC endpoints.

    The processes keep running after this command returns; `qkdchain network down --dir`
    stops them. Starting again in the same directory resumes the same chain.
    """
    from node.launcher import LocalNetwork, NetworkError, plan_network

    try:
        specs = plan_network(directory, validators, followers, admin=admin, permissioned=permissioned)
        network = LocalNetwork(directory, specs, round_timeout_s=round_timeout, dev=dev, detached=True)
        with err.status(f"starting {len(specs)} nodes"):
            network.up()
    except NetworkError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    rows = [{"name": s.name, "role": s.role, "address": s.address, "url": s.url, "log": s.log} for s in specs]
    if as_json:
        emit_json({"directory": str(directory), "nodes": rows})
        return
    table = Table(title=f"QBFT network in {directory}")
    for col in ("name", "role", "address", "JSON-RPC", "log"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["role"], r["address"], r["url"], r["log"])
    out.print(table)
    out.print(f"stop it with: qkdchain network down --dir {directory}")


@network_app.command("down")
def network_down(directory: NetDirOpt = Path("network"), as_json: JsonOpt = False) -> None:
    """Stop the node processes of a network started with `network up` (data stays)."""
    from node.launcher import NetworkError, stop_recorded

    try:
        stopped = stop_recorded(directory)
    except NetworkError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        emit_json({"stopped": stopped})
        return
    out.print(f"stopped {len(stopped)} nodes: {', '.join(stopped) or 'none were running'}")


@commands.command()
def gas(
    batch_size: Annotated[int, typer.Option(min=1, max=200, help="Sessions per batch call.")] = 10,
    rpc_url: RpcOpt = None,
    embedded: ChainOpt = "node",
    as_json: JsonOpt = False,
) -> None:
    """Report the gas used by every KeyRegistry function (measured, on the chosen chain)."""
    from node.client.gas import measure_gas

    with embedded_chain(rpc_url, embedded) as chain:
        rows = measure_gas(chain, batch_size)
    if as_json:
        emit_json({"chain": chain.name, "gas": [r.__dict__ for r in rows]})
        return
    table = Table(title=f"KeyRegistry gas on {chain.name}")
    table.add_column("function")
    table.add_column("gas used", justify="right")
    table.add_column("note")
    for r in rows:
        table.add_row(r.function, f"{r.gas_used:,}", r.note)
    out.print(table)


@bench.command("node")
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
    overload: Annotated[
        float,
        typer.Option(min=0, help="Then offer each system this multiple of its peak, same transaction count (0 skips)."),
    ] = 4.0,
    long: Annotated[
        int | None,
        typer.Option(
            "--long", min=1, help="Instead: a long run of this many transactions through the node in process."
        ),
    ] = None,
    long_rate: Annotated[
        float, typer.Option("--long-rate", min=1, help="Offered tx/s of the long run (back-pressure paces it).")
    ] = 20_000,
    window_s: Annotated[float, typer.Option("--window-s", min=0.1, help="Long run: seconds per reported window.")] = 10,
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Validated TPS and submission-to-receipt latency vs offered load, for the reference,
    our node (in process and over JSON-RPC) and anvil, in one run; with --long, a long run
    of the node alone (TPS per window, RSS slope)."""
    from node.benchmark import SYSTEMS, BenchConfig, plot_node_benchmark, run_node_benchmark

    if long is not None:
        _bench_long(long, long_rate, window_s, vehicles, out_dir, as_json)
        return

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
        loads=load_list, seconds=seconds, vehicles=vehicles, systems=chosen, memory_transactions=memory_transactions,
        overload=overload,
    )  # fmt: skip
    saved = run_bench(
        "bench_node", lambda say: run_node_benchmark(config, progress=say), plot_node_benchmark, out_dir, as_json
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    table = Table(title="Validated transactions: KeyRegistry.commitKey, pre-signed, many vehicles")
    columns = ("system", "offered tx/s", "tx/s", "p50 ms", "p95 ms", "p99 ms", "transactions", "refused", "RSS MB")
    for col in columns:
        table.add_column(col, justify="right" if col != "system" else "left")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(
            r["system"], f"{r['offered_tps']:,}", f"{r['tps']:,.0f}", f"{lat['p50']:.2f}", f"{lat['p95']:.2f}",
            f"{lat['p99']:.2f}", f"{r['transactions']:,}", f"{r['refusals']:,}", f"{r['rss_mb']:.0f}",
        )  # fmt: skip
    out.print(table)
    for name, why in report["skipped"].items():
        out.print(f"[yellow]skipped {name}:[/yellow] {why}")
    recovery = report["recovery_tps"]
    out.print(
        f"signature recovery alone: {recovery['one_core']:,.0f} tx/s on one core, "
        f"{recovery['all_cores']:,.0f} on all cores"
    )
    for name, summary in report["summary"].items():
        top = summary["highest_load"]
        out.print(
            f"{name}: peak {summary['peak_tps']:,.0f} tx/s ({summary['peak_vs_recovery_all_cores']} of recovery); "
            f"offered {top['times_peak']}x peak it kept {top['tps_vs_peak']:.0%} of peak, p99 {top['p99_ms']:,.0f} ms, "
            f"{top['refusals']:,} refusals"
        )
        if (over := summary["overload"]) is not None:
            out.print(
                f"{name}: offered {over['times_peak']}x peak ({over['offered_tps']:,} tx/s) for as many transactions "
                f"as the peak point, it kept {over['tps_vs_peak']:.0%} of peak and {over['tps_vs_bracket']:.0%} of "
                f"the {over['bracket_tps']:,.0f} tx/s its peak load gave just before and after it, "
                f"p99 {over['p99_ms']:,.0f} ms, {over['refusals']:,} refusals"
            )
    if memory := report["engine_memory"]:
        out.print(
            f"revm engine alone, {memory['transactions']:,} transactions that do not grow state: "
            f"{memory['tx_per_s']:,} tx/s, RSS {memory['rss_mb_start']} -> {memory['rss_mb_end']} MB, "
            f"journal entries left {memory['journal_entries_end']}"
        )
    out.print(f"saved {json_path} and {png_path}")


def _bench_long(transactions: int, rate: float, window_s: float, vehicles: int, out_dir: Path, as_json: bool) -> None:
    from node.longrun import plot_long, run_long

    saved = run_bench(
        "bench_node_long",
        lambda say: run_long(transactions, rate, window_s, vehicles, progress=say),
        plot_long,
        out_dir,
        as_json,
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    w = report["window_tps"]
    out.print(
        f"{report['included']:,} transactions in {report['elapsed_s']:,} s: {report['tps']:,} tx/s "
        f"(windows {w['min']:,} to {w['max']:,}, mean {w['mean']:,}); {report['refusals']:,} refusals"
    )
    cpu = ", ".join(f"{role} {us:,} us" for role, us in report["cpu_us_per_tx"].items())
    out.print(f"CPU per transaction: {cpu}")
    out.print(
        f"RSS {report['rss_mb']['start']} -> {report['rss_mb']['end']} MB, slope "
        f"{report['rss_slope_mb_per_100k']} MB per 100k transactions (second half); the registry holds "
        f"{report['storage_slots']:,} storage slots ({report['storage_slots_per_tx']} per transaction)"
    )
    out.print(f"saved {json_path} and {png_path}")


@bench.command("siege")
def bench_siege(
    slow: Annotated[int, typer.Option(min=0, help="Slowloris connections.")] = 2_000,
    busy: Annotated[int, typer.Option(min=1, help="Concurrent busy keep-alive clients.")] = 500,
    hammers: Annotated[int, typer.Option(min=1, help="Clients running 30 M-gas eth_calls back to back.")] = 4,
    seconds: Annotated[float, typer.Option(min=0.5, help="Duration of each phase.")] = 5.0,
    systems: Annotated[str, typer.Option(help="Comma-separated: node, anvil.")] = "node,anvil",
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """A normal client's latency, and submit-to-receipt, while hostile clients attack: our node and
    anvil (the reference) as separate processes, in one run."""
    from node.siege import SiegeConfig, plot_siege, run_siege

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    if not chosen or set(chosen) - {"node", "anvil"}:
        raise typer.BadParameter("--systems: node and/or anvil")
    config = SiegeConfig(slow, busy, hammers, seconds, systems=chosen)
    saved = run_bench("bench_siege", lambda say: run_siege(config, progress=say), plot_siege, out_dir, as_json)
    if saved is None:
        return
    report, json_path, png_path = saved
    table = Table(title="A normal client (eth_blockNumber every 20 ms) under attack")
    for col in ("system", "phase", "p50 ms", "p99 ms", "failed", "RSS max MB", "attack"):
        table.add_column(col, justify="left" if col in ("system", "phase", "attack") else "right")
    for r in report["results"]:
        for phase, v in r.items():
            if isinstance(v, dict) and "probe_ms" in v:
                attack = ", ".join(
                    f"{k}={x}" for k, x in v.items() if k not in ("probe_ms", "probe_failures", "rss_mb_max")
                )
                table.add_row(r["system"], phase, f"{v['probe_ms']['p50']:.2f}", f"{v['probe_ms']['p99']:.2f}",
                              str(v["probe_failures"]), f"{v['rss_mb_max']:.0f}", attack)  # fmt: skip
    out.print(table)
    sends = Table(title="Submit-to-receipt of transfers at 50 tx/s")
    for col in ("system", "phase", "p50 ms", "p99 ms", "lost", "heavy eth_calls served"):
        sends.add_column(col, justify="left" if col in ("system", "phase") else "right")
    for r in report["results"]:
        for phase, v in r.items():
            if isinstance(v, dict) and "submit_to_receipt_ms" in v:
                lat = v["submit_to_receipt_ms"]
                sends.add_row(r["system"], phase, f"{lat['p50']:.2f}", f"{lat['p99']:.2f}", str(v["lost"]),
                              str(v.get("heavy_calls", "")))  # fmt: skip
    out.print(sends)
    for name, why in report["skipped"].items():
        out.print(f"[yellow]skipped {name}:[/yellow] {why}")
    out.print(f"saved {json_path} and {png_path}")


@bench.command("network")
def bench_network(
    validators: Annotated[str, typer.Option(help="Network sizes, comma-separated (1: the solo node).")] = "1,4,7",
    loads: Annotated[str, typer.Option(help="Offered loads in tx/s, comma-separated.")] = "100,500,2000",
    seconds: Annotated[float, typer.Option(min=0.1, help="Offered duration of each load point.")] = 3.0,
    vehicles: Annotated[int, typer.Option(min=2, help="Vehicle accounts sending transactions.")] = 64,
    round_timeout: Annotated[float, typer.Option("--round-timeout", min=0.05, help="QBFT round timer (s).")] = 2.0,
    out_dir: OutOpt = Path("results"),
    as_json: JsonOpt = False,
) -> None:
    """Finalized TPS and submission-to-finality latency for 1, 4 and 7 validators (separate
    processes on this machine, QBFT over libp2p), in one run."""
    from node.netbench import NetworkBenchConfig, plot_network_benchmark, run_network_benchmark

    try:
        sizes = tuple(int(x) for x in validators.split(",") if x.strip())
        load_list = tuple(int(x) for x in loads.split(",") if x.strip())
    except ValueError as exc:
        raise typer.BadParameter("--validators and --loads are comma-separated integers") from exc
    if not sizes or not load_list or min(sizes) < 1 or min(load_list) < 1:
        raise typer.BadParameter("--validators and --loads must be positive")
    config = NetworkBenchConfig(sizes, load_list, seconds, vehicles, round_timeout)
    saved = run_bench(
        "bench_network",
        lambda say: run_network_benchmark(config, progress=say),
        plot_network_benchmark,
        out_dir,
        as_json,
    )
    if saved is None:
        return
    report, json_path, png_path = saved
    table = Table(title="Finalized transactions: KeyRegistry.commitKey over JSON-RPC batches")
    columns = ("validators", "offered tx/s", "tx/s", "p50 ms", "p95 ms", "p99 ms", "transactions", "blocks",
               "CPU cores", "CPU ms/block", "CPU µs/tx", "RSS MB")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in report["results"]:
        lat, cpu = r["latency_ms"], r["cpu"]
        table.add_row(
            str(r["validators"]), f"{r['offered_tps']:,}", f"{r['tps']:,.0f}", f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}", f"{lat['p99']:.1f}", f"{r['transactions']:,}", f"{r['blocks']:,}",
            f"{cpu['cores']}", f"{cpu['ms_per_block']}", f"{cpu['us_per_tx']:,}", f"{r['rss_mb']:.0f}",
        )  # fmt: skip
    out.print("CPU: every node process and its children (store, recovery), summed over the network")
    out.print(table)
    out.print(f"saved {json_path} and {png_path}")
