"""What every package's commands share: the consoles, ``--json`` and ``--out``, saving reports.

Commands are thin: parse options, call library code, print. Figures go to stdout (a
table, or one JSON document with ``--json``); progress and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Directory for the JSON report and the PNG plot.")]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def save_json(data: Any, path: Path) -> Path:
    """Write ``data`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def run_bench(
    name: str,
    run: Callable[[Callable[[str], None]], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], Path],
    out_dir: Path,
    as_json: bool,
) -> tuple[dict[str, Any], Path, Path] | None:
    """Run a benchmark with progress on stderr, save ``name``.json and .png; ``None`` if JSON was printed."""
    with err.status("benchmarking") as status:
        report = run(lambda message: status.update(message))
    json_path = save_json(report, out_dir / f"{name}.json")
    png_path = plot(report, out_dir / f"{name}.png")
    if as_json:
        emit_json(report)
        return None
    return report, json_path, png_path
