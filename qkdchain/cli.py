"""The ``qkdchain`` app: each package registers its own commands here.

Each package module has a ``commands`` and a ``bench`` typer group:
``contracts`` (compile), ``node`` (node, network, gas, bench node/network), ``qkd``
(qkd, plan, bench qkd) and ``vehicles`` (devnet, bench ibc) each keep their commands
beside their code; this module only assembles them.
"""

from __future__ import annotations

import typer

from contracts import cli as contracts_cli
from node import cli as node_cli
from qkd import cli as qkd_cli
from vehicles import cli as vehicles_cli

app = typer.Typer(
    help="qkdchain: QKD key registry on a permissioned Ethereum ledger for the Internet of Vehicles.",
    no_args_is_help=True,
    add_completion=False,
)
bench = typer.Typer(help="Benchmarks: print figures, save JSON and a PNG plot.", no_args_is_help=True)
app.add_typer(bench, name="bench")

for package in (contracts_cli, vehicles_cli, node_cli, qkd_cli):
    app.registered_commands += package.commands.registered_commands
    app.registered_groups += package.commands.registered_groups
    bench.registered_commands += package.bench.registered_commands

if __name__ == "__main__":
    app()
