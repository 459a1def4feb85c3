"""``qkdchain plan``: the command is defined here and registered by the ``qkdchain`` app.

Thin: parse options, call :func:`qkd.planning.planner.run_plan`, print, save JSON and PNGs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qkd.planning.errors import PlanningError

if TYPE_CHECKING:
    from qkd.planning.planner import PlanReport

out = Console()
err = Console(stderr=True)


def _write_json(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def plan(
    topology: Annotated[
        str, typer.Option(help="nsfnet, usnet, or a JSON file with name, nodes and links given as (a, b, km) triples.")
    ] = ("nsfnet"),
    scenarios: Annotated[int, typer.Option(min=1, help="Demand scenarios sampled (uniform key rates).")] = 100,
    providers: Annotated[
        Path | None, typer.Option(help="JSON list of providers with capacities and requests (default: the seed's 3).")
    ] = None,
    costs: Annotated[Path | None, typer.Option(help="JSON cost table (default: the seed's Table III).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the default requests and the scenarios.")] = 0,
    k_routes: Annotated[int, typer.Option("--k-routes", min=1, help="Candidate routes per request.")] = 3,
    saa_batches: Annotated[
        int, typer.Option("--saa-batches", min=0, help="Independent scenario batches for SAA (0 or 1: skip).")
    ] = 3,
    devnet_report: Annotated[
        Path | None,
        typer.Option("--devnet-report", help="Derive the demand from a `qkdchain devnet --json` report."),
    ] = None,
    vehicles: Annotated[int, typer.Option(min=1, help="Fleet size the devnet demand is scaled to.")] = 10_000,
    sites: Annotated[int, typer.Option(min=2, help="Backbone nodes hosting RSUs (devnet demand).")] = 4,
    window_s: Annotated[
        float, typer.Option("--window-s", min=1, help="Seconds of traffic one devnet run stands for.")
    ] = 3600.0,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for plan.json and the PNG figures.")] = Path(
        "results"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")] = (
        False
    ),
) -> None:
    """Two-stage stochastic provisioning of QKD/KM wavelengths and Shapley cost sharing (seed 003)."""
    # imported here so that other qkdchain commands do not pay for scipy's optimiser at start-up
    from qkd.planning.costs import load_costs
    from qkd.planning.demand import devnet_requests, load_devnet_report
    from qkd.planning.linkrate import LinkPhysics
    from qkd.planning.model import Network, default_providers, load_providers, providers_to_json
    from qkd.planning.planner import run_plan
    from qkd.planning.topology import load_topology

    try:
        topo = load_topology(topology)
        table = load_costs(costs)
        chosen = load_providers(providers) if providers else default_providers(topo, seed)
        extra: dict[str, Any] = {}
        if devnet_report is not None:
            report = load_devnet_report(devnet_report)
            chosen, summary = devnet_requests(
                report, topo, chosen, vehicles, sites=sites, window_s=window_s, path=str(devnet_report)
            )
            extra["devnet_demand"] = summary
            _write_json(providers_to_json(chosen), out_dir / "demand.json")
        network = Network(topo, chosen, table, LinkPhysics(), k_routes=k_routes)
        with err.status("planning") as status:
            result = run_plan(
                network, scenarios, seed, saa_batches=saa_batches, progress=lambda m: status.update(m), extra=extra
            )
    except PlanningError as exc:
        err.print(f"[red]error ({type(exc).__name__}):[/red] {exc}")
        raise typer.Exit(2) from exc
    doc = result.to_json()
    json_path = _write_json(doc, out_dir / "plan.json")
    from qkd.planning.plots import plot_fig6, plot_fig8

    figs = [plot_fig6(result, out_dir / "plan_fig6.png"), plot_fig8(result, out_dir / "plan_fig8.png")]
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    _print(result)
    out.print(f"saved {json_path}, {figs[0]} and {figs[1]}")


def _print(r: PlanReport) -> None:
    from qkd.planning.planner import first_stage_table

    out.print(
        f"[bold]{r.topology}[/bold], {len(r.standalone)} providers, {r.scenarios} scenarios: "
        f"MILP {r.sp.size.variables:,} variables ({r.sp.size.integers} integer), {r.sp.size.constraints:,} "
        f"constraints, HiGHS {r.sp.highs_s:.2f} s; whole run {r.solve_s:.1f} s ({r.coalition_solves} coalitions)"
    )
    reserve = Table(title="first-stage reservation (wavelengths per link)")
    for col in ("link", "QKD", "KM"):
        reserve.add_column(col, justify="right")
    for link, q, k in first_stage_table(r.sp.first_stage):
        reserve.add_row(link, str(q), str(k))
    out.print(reserve)
    for name, route in r.sp.first_stage.routes.items():
        out.print(f"  route {name}: {'-'.join(route)}")
    costs = Table(title="expected cost")
    costs.add_column("part")
    costs.add_column("$", justify="right")
    for label, value in (
        ("reservation (first stage)", r.sp.reservation_cost),
        ("utilization (expected)", r.sp.utilization_cost),
        ("on demand (expected)", r.sp.on_demand_cost),
        ("SP total", r.sp.cost),
        ("EV solution's expected cost (EEV)", r.bounds.eev),
        ("wait-and-see (WS)", r.bounds.ws),
        ("VSS = EEV - SP", r.bounds.vss),
        ("EVPI = SP - WS", r.bounds.evpi),
    ):
        costs.add_row(label, f"{value:,.0f}")
    out.print(costs)
    shares = Table(title=f"cost sharing ({r.shapley.method} Shapley values)")
    for col in ("provider", "stand-alone", "Shapley share", "saving"):
        shares.add_column(col, justify="right")
    for p, alone in r.standalone.items():
        share = r.shapley.values[p]
        shares.add_row(p, f"{alone:,.0f}", f"{share:,.0f}", f"{100 * (alone - share) / alone:.1f} %" if alone else "-")
    shares.add_row("total", f"{sum(r.standalone.values()):,.0f}", f"{r.coalition_cost:,.0f}", f"{r.saving_pct:.1f} %")
    out.print(shares)
    if r.axioms:
        a = r.axioms
        out.print(
            f"efficiency gap {a.efficiency_gap:.3g}, symmetry {'ok' if a.symmetric_pairs_ok else 'VIOLATED'}, "
            f"dummies {list(a.dummies) or 'none'}, individually rational {all(a.individually_rational.values())}, "
            f"in the core {a.in_core}"
        )
    if r.formation:
        parts = " ".join("{" + ",".join(sorted(c)) + "}" for c in r.formation.partition)
        out.print(f"coalition formation: {parts} ({'stable' if r.formation.stable else 'not stable'}, "
                  f"{r.formation.iterations} iterations)")  # fmt: skip
    if r.saa:
        s = r.saa
        out.print(
            f"SAA ({len(s.batch_costs)} batches, {s.confidence:.0%}): lower bound {s.lower_mean:,.0f} "
            f"[{s.lower_ci[0]:,.0f}, {s.lower_ci[1]:,.0f}], upper bound {s.upper_mean:,.0f} "
            f"[{s.upper_ci[0]:,.0f}, {s.upper_ci[1]:,.0f}]"
        )
    if "devnet_demand" in r.extra:
        d = r.extra["devnet_demand"]
        out.print(
            f"devnet demand: {d['per_vehicle_bps']:.4g} bit/s per vehicle x {d['fleet']:,} vehicles = "
            f"{d['total_bps']:,.0f} bit/s over {d['pairs']} site pairs ({d['per_pair_mean_bps']:,.0f} bit/s each)"
        )
