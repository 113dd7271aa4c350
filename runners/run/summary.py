"""The short results table printed at the end of a run, and how to open the MLflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from runners.tracking.server import ui_url
from runners.tracking.tracker import Tracker


def format_table(stats: dict[str, dict[str, float]], keys: Sequence[str]) -> str:
    """Format ``{metric: {min, median, mean, max, std, cv}}`` as a fixed-width table.

    Parameters
    ----------
    stats : dict
        Per-metric summaries (from :func:`runners.analysis.stats.summarize`).
    keys : sequence of str
        The metrics to show, in order (missing ones are left out).

    Returns
    -------
    str
    """
    cols = ("min", "median", "mean", "max", "std", "cv")
    lines = [f"{'metric':<20}" + "".join(f"{c:>10}" for c in cols)]
    for key in keys:
        if key in stats:
            lines.append(f"{key:<20}" + "".join(f"{stats[key][c]:>10.4g}" for c in cols))
    return "\n".join(lines)


def format_curves(points: list[tuple[str, float, int]], width: int = 12) -> str:
    """Median per step (rows) for each curve metric (columns), as a fixed-width table."""
    names = sorted({n for n, _, _ in points})
    steps = sorted({s for _, _, s in points})
    value = {(n, s): v for n, v, s in points}
    lines = [f"{'step':>10}" + "".join(f"{n[:width - 1]:>{width}}" for n in names)]
    for s in steps:
        cells = "".join(f"{value[(n, s)]:>{width}.4g}" if (n, s) in value else " " * width
                        for n in names)
        lines.append(f"{s:>10}{cells}")
    return "\n".join(lines)


def summary_text(cfg: DictConfig, summary: dict[str, Any], tracker: Tracker, run_id: str,
                 experiment_id: str) -> str:
    """The results table, the stage times and the command that opens the MLflow UI."""
    st = summary["stage_times"]
    lines = [f"\n{cfg.bench.name} on machine={cfg.machine.name} fs={cfg.fs.name}: "
             f"{cfg.bench.ranks} ranks x {summary['trials']} trials  [run {run_id} FINISHED]",
             format_table(summary["stats"], summary["shown"])]
    if summary.get("curves"):
        lines.append(format_curves(summary["curves"]))
    lines.append("stages (s): " + "  ".join(f"{k} {v:.2f}" for k, v in st.items()))
    lines.append("results: " + "  ".join(summary["files"]))
    if tracker.offline_reason is not None and tracker.spool is not None:
        lines.append(f"\nRecorded in the spool {tracker.spool.root} (the tracking server could "
                     "not be reached); upload it with:\n  bench sync")
        return "\n".join(lines)
    lines += ["\nOpen the MLflow UI on this store with:", f"  {tracker.ui_command()}",
              f"  then {ui_url('127.0.0.1', 5000, f'experiments/{experiment_id}/runs/{run_id}')}"]
    return "\n".join(lines)


def print_summary(cfg: DictConfig, summary: dict[str, Any], tracker: Tracker, run_id: str,
                  experiment_id: str) -> None:
    """Print :func:`summary_text`."""
    print(summary_text(cfg, summary, tracker, run_id, experiment_id))
