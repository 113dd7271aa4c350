"""``bench report``: a static results folder (HTML page, plots, CSV data, summary PDF).

The folder holds ``index.html`` (self-contained: inline CSS, no script, no external URL),
``plots/<machine--experiment--metric>.png`` (a figure per experiment and metric of each
machine), ``data/runs.csv``, ``data/verdicts.csv`` and ``summary.pdf``; copy it to any
static host.  It is built beside the output folder and moved in at the end, so bad
input writes nothing and a failed build leaves the previous report as it was.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: What a report writes into its folder (all replaced by the next report).
ENTRIES = ("index.html", "plots", "data", "summary.pdf")


class ReportError(ValueError):
    """Bad input: one line saying what is wrong."""


def check_output(out: Path) -> None:
    """Refuse an output folder that holds files but no page of a previous report.

    Raises
    ------
    ReportError
        When ``out`` is a file, or a non-empty folder without a ``bench report`` index.html.
    """
    from runners.report.page import GENERATOR

    if not out.exists():
        return
    if not out.is_dir():
        raise ReportError(f"--output {out} is a file, not a folder")
    if not any(out.iterdir()):
        return
    index = out / "index.html"
    try:
        ours = index.is_file() and f'content="{GENERATOR}"' in index.read_text(errors="replace")
    except OSError:
        ours = False
    if not ours:
        raise ReportError(f"--output {out} is not empty and holds no previous report "
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


def load(uri: str, experiments: list[str] | None, metrics: list[str] | None) -> Any:
    """Read and check the runs: ``(runs table, metric names)``.

    Raises
    ------
    ReportError
        On a missing or empty store, an unknown experiment or metric, or no runs.
    """
    from runners.report.page import default_metrics, resolve_metrics
    from runners.tracking import Tracker, local_store_paths

    db = local_store_paths(uri)
    if db is not None and not db.is_file():
        raise ReportError(f"no store at {db}; run `python run.py` first or pass "
                          "--tracking-uri sqlite:///PATH/mlflow.db")
    tracker = Tracker(uri, lazy=True)
    try:
        frame = tracker.runs_table(experiments)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    where = ", ".join(experiments) if experiments else "the store"
    if frame.empty:
        raise ReportError(f"no runs in {where} ({uri})")
    if metrics:
        try:
            names = resolve_metrics(frame, metrics)
        except ValueError as exc:
            raise ReportError(str(exc)) from None
    else:
        names = default_metrics(frame)
        if not names:
            raise ReportError(f"no *.median metric in the runs of {where}; pass --metric")
    return frame, names


def build(frame: Any, metrics: list[str], out: Path, title: str, pdf: bool,
          root: Path) -> dict[str, Any]:
    """Write the report into ``out`` (via a folder beside it); return what was made."""
    import pandas as pd

    from runners.report import page
    from runners.report.pdf import (
        PNG_DPI,
        PNG_SIZE,
        drawn_series,
        plot_names,
        write_pdf,
        write_pngs,
    )

    series = page.series_table(frame, metrics)
    if series.empty:
        raise ReportError(f"no FINISHED run has a value of {', '.join(metrics)}")
    table = page.verdicts(series)
    names, drawn = plot_names(table), drawn_series(table)
    failed = page.failures(frame)
    updated = pd.Timestamp.now(tz="UTC")
    commit, branch = page.newest_commit(frame), branch_of(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        figures = write_pngs(series, table, names, stage / "plots", drawn, failed)
        size = (round(PNG_SIZE[0] * PNG_DPI), round(PNG_SIZE[1] * PNG_DPI))
        text = page.render_html(table, names, failed, title=title, updated=updated,
                                commit=commit, branch=branch, n_runs=len(frame),
                                plot_size=size, drawn=drawn)
        (stage / "index.html").write_text(text, encoding="utf-8")
        (stage / "data").mkdir()
        frame.to_csv(stage / "data" / "runs.csv", index=False)
        table.assign(plot=[f"plots/{n}.png" for n in names], drawn=drawn).to_csv(
            stage / "data" / "verdicts.csv", index=False)
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
            "failed": len(failed), "pages": pages, "figures": len(figures)}


def cmd_report(args: argparse.Namespace) -> int:
    """Write a static results folder: HTML page with plots, CSV data and a summary PDF.

    One section per machine: a latest-vs-baseline table with the regression verdicts
    (regressions first) and a figure per experiment and metric of the values over time, a
    line per series (fs, config.hash; at most 8, regressions and longest first), failed
    runs marked with their failure kind. Default metrics: every *.median. The folder can be
    copied to any static host; an existing folder is only replaced if it holds a previous
    report.
    """
    from runners.schema import PROJECT_ROOT

    started = time.perf_counter()
    out = Path(args.output).expanduser().resolve()
    experiments = [n.strip() for item in args.experiment or [] for n in item.split(",")
                   if n.strip()] or None
    metrics = [n for item in args.metric or [] for n in item.split(",") if n.strip()] or None
    try:
        check_output(out)
        frame, names = load(args.tracking_uri, experiments, metrics)
        made = build(frame, names, out, args.title, args.pdf, PROJECT_ROOT)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pdf = f", summary.pdf ({made['pages']} pages)" if args.pdf else ""
    print(f"report: {out / 'index.html'}: {made['series']} series in {made['figures']} "
          f"figure(s) on {made['machines']} "
          f"machine(s), {made['regressions']} regression(s), {made['failed']} failed run(s)"
          f"{pdf} in {time.perf_counter() - started:.1f} s")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register the ``report`` verb on a ``bench`` sub-parser action.

    Parameters
    ----------
    verbs : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.
    """
    from runners.cli import DEFAULT_URI  # only when the parser is built

    doc = cmd_report.__doc__ or ""
    p = verbs.add_parser("report", help=doc.splitlines()[0], description=doc)
    p.add_argument("--output", required=True, metavar="DIR",
                   help="the results folder (created; replaced only if it holds a report)")
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="an experiment name; repeat or comma-separate for several "
                        "(default: all experiments)")
    p.add_argument("--metric", action="append", metavar="M",
                   help="a metric, e.g. total_s.median; repeat or comma-separate "
                        "(default: every *.median metric)")
    p.add_argument("--tracking-uri", default=DEFAULT_URI,
                   help="MLflow tracking URI (default: the embedded store %(default)s)")
    p.add_argument("--title", default="Benchmark results", help="page title (%(default)s)")
    p.add_argument("--pdf", action=argparse.BooleanOptionalAction, default=True,
                   help="also write summary.pdf (default: yes)")
    p.set_defaults(func=cmd_report)
