"""PNG figures like the seed's Fig. 6 (the over/under-provisioning valley) and Fig. 8
(cost with and without cooperation), drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from qkd.planning.planner import PlanReport


def plot_fig6(report: PlanReport, path: Path) -> Path:
    """Expected cost (first stage, second stage, total) vs reserved QKD and KM wavelengths per link."""
    fig, axes = plt.subplots(1, len(report.sweeps), figsize=(11, 4))
    for ax, s in zip(axes, report.sweeps, strict=True):
        total = [a + b for a, b in zip(s.first_stage, s.second_stage, strict=True)]
        ax.plot(s.levels, [x / 1e6 for x in s.first_stage], "o-", label="first stage (reservation)")
        ax.plot(s.levels, [x / 1e6 for x in s.second_stage], "s-", label="second stage (utilization + on demand)")
        ax.plot(s.levels, [x / 1e6 for x in total], "k^-", label="total")
        ax.axhline(report.sp.cost / 1e6, color="grey", ls=":", label="SP optimum (per-link reservations)")
        ax.set_xlabel(f"reserved {s.kind.upper()} wavelengths on every used link")
        ax.set_ylabel("expected cost (M$)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report.topology}: cost vs reservation ({report.scenarios} scenarios)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fig8(report: PlanReport, path: Path) -> Path:
    """Each provider's stand-alone cost next to its Shapley share of the grand coalition."""
    names = list(report.standalone)
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([x - 0.2 for x in xs], [report.standalone[n] / 1e6 for n in names], 0.4, label="without cooperation")
    ax.bar([x + 0.2 for x in xs], [report.shapley.values[n] / 1e6 for n in names], 0.4, label="with (Shapley share)")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("expected cost (M$)")
    ax.set_title(f"{report.topology}: cooperation saves {report.saving_pct:.1f} %")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
