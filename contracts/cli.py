"""``qkdchain compile``: the contracts' commands. Thin: call library code, print."""

from __future__ import annotations

import typer

from qkdchain.console import JsonOpt, emit_json, err, out

commands = typer.Typer()  # assembled into the qkdchain app by qkdchain.cli
bench = typer.Typer()


@commands.command("compile")
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
        emit_json({"artifacts": rows})
        return
    for r in rows:
        out.print(
            f"[green]compiled[/green] {r['contract']} -> {r['artifact']} "
            f"(solc {r['compiler']}, {r['evm_version']}, {r['deployed_bytes']} bytes deployed)"
        )
