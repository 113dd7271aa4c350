"""``bench compare``: one metric of many runs as a table (rows ``--by`` tags/params,
optionally pivoted ``--columns``), by default each benchmark's headline figure of merit."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from runners.analysis.merits import declared, has_values, merit_metrics
from runners.analysis.table import (
    AGGS,
    FORMATS,
    available_metrics,
    label,
    listing,
    parse_list,
    pivot,
    render,
    resolve_column,
    resolve_metric,
)
from runners.cli.options import add_selection, choice, fail, load_runs, write
from runners.errors import InputError
from runners.tracking.query import STATUSES

if TYPE_CHECKING:
    import pandas as pd

#: When the runs have no figure of merit (recorded before kinds declared them).
FALLBACK_METRIC = "total_s.median"
DEFAULT_BY = "machine,fs,bench.ranks"
#: Keys that keep benchmarks apart; ``compare`` adds ``experiment`` to ``--by`` without one.
SEPARATE_BENCHES = frozenset({"experiment", "tag.bench", "param.bench.name"})


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare one metric across runs: a table of its median (or --agg) by tags and params.

    The metric is --metric, else each benchmark's headline figure of merit (total_s.median
    for runs that record none); when the benchmarks' headlines differ, the table has a
    metric column. Rows are the --by keys (default machine,fs,bench.ranks), optionally
    pivoted into --columns; each cell aggregates the runs that match --experiment,
    --status (default FINISHED), --since and every --where KEY=VALUE (repeat a key for any
    of several values). A key is a tag first, then a param (machine -> tag machine,
    bench.ranks -> param bench.ranks); experiment and status work too. When the runs span
    several experiments and neither experiment nor bench is a key, experiment is added as
    the first row key. Sweep parent runs are left out.
    """
    try:
        agg = choice("--agg", args.agg, AGGS)
        fmt = choice("--format", args.format, FORMATS)
        status = choice("--status", args.status, (*STATUSES, "any"))
        by_names = parse_list(args.by)
        if not by_names:
            raise InputError(f"--by {args.by!r} names no column; e.g. --by {DEFAULT_BY}")
        col_names = parse_list(args.columns or "")
        _, frame, text = load_runs(args, None if status == "any" else status)
        heads = {} if args.metric else headlines(frame)
        if not args.metric and not heads:
            raise InputError(f"the matching runs have no figure of merit and no "
                             f"{FALLBACK_METRIC}; give --metric, one of "
                             f"{listing(available_metrics(frame), 8)}")
        metric = resolve_metric(frame, args.metric) if args.metric else ""
        by = [resolve_column(frame, n, "--by") for n in by_names]
        columns = [resolve_column(frame, n, "--columns") for n in col_names]
    except InputError as exc:
        return fail(str(exc))
    if len(set(heads.values())) > 1:       # benchmarks with different headline metrics
        table = by_headline(frame, heads, by, columns, agg)
        runs = sum(int(frame.loc[frame["experiment"] == e, m].notna().sum())
                   for e, m in heads.items())
        what = f"{agg} of each benchmark's headline figure of merit"
    else:
        metric = metric or next(iter(heads.values()))
        experiments = frame.loc[frame[metric].notna(), "experiment"].nunique()
        if experiments > 1 and not {*by, *columns} & SEPARATE_BENCHES:
            by = ["experiment", *by]       # never mix the values of different benchmarks
        table = pivot(frame, metric, by, columns or None, agg)
        runs = int(frame[metric].notna().sum())
        what = f"{agg} of {label(metric)}"
    body = render(table, fmt)
    if fmt == "table":
        body = f"{what} over {runs} runs ({text})\n{body}"
    write(body, args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}: {len(table)} rows")
    return 0


def headlines(frame: pd.DataFrame) -> dict[str, str]:
    """``{experiment: its headline metric column}``: the first figure of merit its runs
    declare, :data:`FALLBACK_METRIC` for one that declares none (an experiment with
    neither is left out)."""
    out = {}
    for experiment, runs in frame.groupby("experiment", sort=True):
        metrics = merit_metrics(runs).get(str(experiment), []) if declared(runs) else []
        metric = metrics[0] if metrics else FALLBACK_METRIC
        if has_values(runs, metric):
            out[str(experiment)] = f"metric.{metric}"
    return out


def by_headline(frame: pd.DataFrame, heads: dict[str, str], by: list[str],
                columns: list[str], agg: str) -> pd.DataFrame:
    """One table of several benchmarks, each on its own headline metric: the rows of each
    benchmark's pivot, with ``experiment`` and ``metric`` columns first."""
    import pandas as pd

    parts = []
    for experiment, metric in heads.items():
        runs = frame[frame["experiment"] == experiment]
        if not runs[metric].notna().any():
            continue
        part = pivot(runs, metric, by, columns or None, agg)
        part = part.rename(columns={label(metric): agg})
        part.insert(0, "metric", label(metric))
        part.insert(0, "experiment", experiment)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench compare``."""
    doc = cmd_compare.__doc__ or ""
    p = verbs.add_parser("compare", help=doc.splitlines()[0], description=doc)
    add_selection(p)
    p.add_argument("--metric", default=None,
                   help="metric to compare; a base name means its median, e.g. total_s "
                        "(default: the benchmark's headline figure of merit)")
    p.add_argument("--by", default=DEFAULT_BY, metavar="KEYS",
                   help="comma-separated keys of the rows (default: %(default)s)")
    p.add_argument("--columns", metavar="KEYS",
                   help="comma-separated keys whose values become columns, e.g. fs")
    p.add_argument("--agg", default="median", metavar="{" + ",".join(AGGS) + "}",
                   help="how the runs of a cell are combined (default: %(default)s)")
    p.add_argument("--status", default="FINISHED", metavar="{" + ",".join(STATUSES) + ",any}",
                   help="only runs with this status (default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_compare)
