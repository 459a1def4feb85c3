"""The node's commands: ``qkdchain node``, ``gas`` and ``bench node``. Thin: parse, call, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from node.client.chain import Chain, EthTesterChain, NodeChain, RpcChain
from node.errors import NodeError
from qkdchain.console import JsonOpt, OutOpt, emit_json, err, out, run_bench

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


@contextmanager
def embedded_chain(rpc_url: str | None, embedded: str = "node", admin: str | None = None) -> Iterator[Chain]:
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
    from node.client.chain import DEV_FAUCET_KEY, DEV_VALIDATOR_KEY
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
    saved = run_bench(
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
