"""Build the static results folder of ``bench report`` (HTML page, plots, CSV data, PDF).

The folder holds ``index.html`` (self-contained: inline CSS, no script, no external URL),
``plots/<machine--experiment--metric>.png`` (a figure per experiment and metric of each
machine), ``data/runs.csv``, ``data/verdicts.csv``, ``data/scaling.csv`` (when a sweep
over ranks is among the runs: :mod:`runners.report.scaling`) and ``summary.pdf``; copy it
to any static host.  It is built beside the output folder and moved in at the end, so bad
input writes nothing and a failed build leaves the previous report as it was.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.analysis.merits import merit_metrics, only, union
from runners.errors import InputError
from runners.report import page
from runners.report.pdf import PNG_DPI, PNG_SIZE, drawn_series, plot_names, write_pdf, write_pngs
from runners.report.scaling import studies
from runners.tracking.query import StoreReader
from runners.tracking.store import local_store_paths

if TYPE_CHECKING:
    import pandas as pd

#: What a report writes into its folder (all replaced by the next report).
ENTRIES = ("index.html", "plots", "data", "summary.pdf")


def check_output(out: Path) -> None:
    """Refuse an output folder that holds files but no page of a previous report.

    Raises
    ------
    InputError
        When ``out`` is a file, or a non-empty folder without a ``bench report`` index.html.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--output {out} is a file, not a folder")
    if not any(out.iterdir()):
        return
    index = out / "index.html"
    try:
        mark = f'content="{page.GENERATOR}"'
        ours = index.is_file() and mark in index.read_text(errors="replace")
    except OSError:
        ours = False
    if not ours:
        raise InputError(f"--output {out} is not empty and holds no previous report "
                          "(index.html by bench report); pick an empty or new folder")


def branch_of(root: Path) -> str | None:
    """``git rev-parse --abbrev-ref HEAD`` of a checkout; None without git or a checkout."""
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--abbrev-ref", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None


def load(uri: str, experiments: list[str] | None,
         metrics: list[str] | None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Read and check the runs: ``(runs table, {experiment: metrics to draw})``.

    Without ``metrics``, each experiment's figures of merit (every ``*.median`` for runs
    recorded before kinds declared them).

    Raises
    ------
    InputError
        On a missing or empty store, an unknown experiment or metric, or no runs.
    """
    db = local_store_paths(uri)
    if db is not None and not db.is_file():
        raise InputError(f"no store at {db}; run `python run.py` first or pass "
                         "--tracking-uri sqlite:///PATH/mlflow.db")
    try:
        frame = StoreReader(uri).runs_table(experiments)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    where = ", ".join(experiments) if experiments else "the store"
    if frame.empty:
        raise InputError(f"no runs in {where} ({uri})")
    if metrics:
        try:
            names = page.resolve_metrics(frame, metrics)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return frame, {str(e): names for e in frame["experiment"].unique()}
    per_experiment = merit_metrics(frame)
    if not per_experiment:
        raise InputError(f"no figure of merit and no *.median metric in the runs of {where}; "
                         "pass --metric")
    return frame, per_experiment


def build(frame: pd.DataFrame, metrics: dict[str, list[str]], out: Path, title: str,
          pdf: bool, root: Path) -> dict[str, Any]:
    """Write the report into ``out`` (via a folder beside it); return what was made.

    ``metrics`` are the metrics drawn per experiment (see :func:`load`).
    """
    import pandas as pd

    series = only(page.series_table(frame, union(metrics)), metrics).reset_index(drop=True)
    if series.empty:
        raise InputError(f"no FINISHED run has a value of {', '.join(union(metrics))}")
    table = page.verdicts(series)
    names, drawn = plot_names(table), drawn_series(table)
    failed = page.failures(frame)
    scaling, scaling_rows = studies(frame, metrics)
    updated = pd.Timestamp.now(tz="UTC")
    commit, branch = page.newest_commit(frame), branch_of(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        figures = write_pngs(series, table, names, stage / "plots", drawn, failed)
        size = (round(PNG_SIZE[0] * PNG_DPI), round(PNG_SIZE[1] * PNG_DPI))
        text = page.render_html(table, names, failed, title=title, updated=updated,
                                commit=commit, branch=branch, n_runs=len(frame),
                                plot_size=size, drawn=drawn, scaling=scaling)
        (stage / "index.html").write_text(text, encoding="utf-8")
        (stage / "data").mkdir()
        frame.to_csv(stage / "data" / "runs.csv", index=False)
        table.assign(plot=[f"plots/{n}.png" for n in names], drawn=drawn).to_csv(
            stage / "data" / "verdicts.csv", index=False)
        if scaling:
            scaling_rows.to_csv(stage / "data" / "scaling.csv", index=False)
        pages = 0
        if pdf:
            heading = [title, f"last updated {updated:%Y-%m-%d %H:%M} UTC",
                       f"branch {branch or 'unknown'} · commit {commit[:12] or 'unknown'}",
                       f"{len(frame)} runs, {len(table)} series, {len(failed)} failed runs, "
                       f"{int((table['status'] == 'regression').sum())} regressions"]
            pages = write_pdf(stage / "summary.pdf", table, heading, names, stage / "plots")
        out.mkdir(exist_ok=True)
        for entry in ENTRIES:
            old = out / entry
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
            if (stage / entry).exists():
                (stage / entry).rename(old)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {"series": len(table), "machines": table["machine"].nunique(),
            "regressions": int((table["status"] == "regression").sum()),
            "failed": len(failed), "pages": pages, "figures": len(figures),
            "scaling": len(scaling)}


