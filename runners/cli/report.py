"""``bench report``: a static results folder (HTML page, plots, CSV data, summary PDF).

The folder holds ``index.html`` (self-contained: inline CSS, no script, no external URL),
``plots/<machine--experiment--metric>.png`` (a figure per experiment and metric of each
machine), ``data/runs.csv``, ``data/verdicts.csv`` and ``summary.pdf``; copy it to any
static host.  It is built beside the output folder and moved in at the end, so bad
input writes nothing and a failed build leaves the previous report as it was.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from runners.cli.options import DEFAULT_URI, fail
from runners.config.schema import PROJECT_ROOT
from runners.errors import InputError
from runners.report.build import build, check_output, load


def cmd_report(args: argparse.Namespace) -> int:
    """Write a static results folder: HTML page with plots, CSV data and a summary PDF.

    One section per machine: a latest-vs-baseline table with the regression verdicts
    (regressions first) and a figure per experiment and metric of the values over time, a
    line per series (fs, config.hash; at most 8, regressions and longest first), failed
    runs marked with their failure kind. Default metrics: each benchmark's figures of
    merit (every *.median of runs that declare none). The folder can be
    copied to any static host; an existing folder is only replaced if it holds a previous
    report.
    """
    started = time.perf_counter()
    out = Path(args.output).expanduser().resolve()
    experiments = [n.strip() for item in args.experiment or [] for n in item.split(",")
                   if n.strip()] or None
    metrics = [n for item in args.metric or [] for n in item.split(",") if n.strip()] or None
    try:
        check_output(out)
        frame, names = load(args.tracking_uri, experiments, metrics)
        made = build(frame, names, out, args.title, args.pdf, PROJECT_ROOT)
    except InputError as exc:
        return fail(str(exc))
    pdf = f", summary.pdf ({made['pages']} pages)" if args.pdf else ""
    print(f"report: {out / 'index.html'}: {made['series']} series in {made['figures']} "
          f"figure(s) on {made['machines']} "
          f"machine(s), {made['regressions']} regression(s), {made['failed']} failed run(s)"
          f"{pdf} in {time.perf_counter() - started:.1f} s")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench report``."""
    doc = cmd_report.__doc__ or ""
    p = verbs.add_parser("report", help=doc.splitlines()[0], description=doc)
    p.add_argument("--output", required=True, metavar="DIR",
                   help="the results folder (created; replaced only if it holds a report)")
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="an experiment name; repeat or comma-separate for several "
                        "(default: all experiments)")
    p.add_argument("--metric", action="append", metavar="M",
                   help="a metric, e.g. total_s.median; repeat or comma-separate "
                        "(default: each benchmark's figures of merit)")
    p.add_argument("--tracking-uri", default=DEFAULT_URI,
                   help="MLflow tracking URI (default: the embedded store %(default)s)")
    p.add_argument("--title", default="Benchmark results", help="page title (%(default)s)")
    p.add_argument("--pdf", action=argparse.BooleanOptionalAction, default=True,
                   help="also write summary.pdf (default: yes)")
    p.set_defaults(func=cmd_report)
