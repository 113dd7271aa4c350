"""``bench compare``: one metric of many runs as a table (rows ``--by`` tags/params,
optionally pivoted ``--columns``), by default each benchmark's headline figure of merit."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from runners.analysis.ab import (
    BETTER,
    MISSING_MARK,
    SAME,
    SIDE,
    SIDES,
    WORSE,
    compare_sides,
    summary,
)
from runners.analysis.merits import declared, has_values, merit_metrics
from runners.analysis.table import (
    AGGS,
    FORMATS,
    available_metrics,
    filter_where,
    label,
    listing,
    parse_list,
    parse_where,
    pivot,
    render,
    resolve_column,
    resolve_metric,
)
from runners.cli.options import add_selection, choice, fail, load_runs, open_store, write
from runners.errors import InputError
from runners.tracking.query import STATUSES
from runners.tracking.trials import expand_ids, metric_history, runs_by_id

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

    With --baseline and --contender (each a comma-separated list of run ids and sweep ids;
    a sweep stands for its child runs), an A/B comparison instead: see :func:`cmd_ab`.
    """
    if args.baseline is not None or args.contender is not None:
        return cmd_ab(args)
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


def cmd_ab(args: argparse.Namespace) -> int:
    """A/B comparison: the runs of --baseline and --contender matched by config, and per
    config and metric both medians, their ratio and a Mann-Whitney U test over the trials
    (see :mod:`runners.analysis.ab`); exit 1 with --fail-on-regression when a row is a
    significant regression, else 0."""
    try:
        fmt = choice("--format", args.format, FORMATS)
        if not args.baseline or not args.contender:
            given, missing = ("--baseline", "--contender")[::1 if args.baseline else -1]
            raise InputError(f"{given} needs {missing} too: give both, each a comma-separated "
                             "list of run ids or sweep ids")
        if not 0 < args.alpha < 1:
            raise InputError(f"--alpha {args.alpha} is not between 0 and 1; e.g. --alpha 0.05")
        if args.factor < 1:
            raise InputError(f"--factor {args.factor} is below 1; e.g. --factor 1.05")
        sides = {"baseline": parse_list(args.baseline), "contender": parse_list(args.contender)}
        frame, history, metrics = load_sides(args, sides)
        rows, designed = compare_sides(frame, history, metrics, args.alpha, args.factor)
    except InputError as exc:
        return fail(str(exc))
    counts = {s: int((frame[SIDE] == s).sum()) for s in SIDES}
    named = {s: f"{','.join(ids[:3])}{f',... ({len(ids)} ids, ' if len(ids) > 3 else ' ('}"
                f"{counts[s]} run{'s' * (counts[s] != 1)})" for s, ids in sides.items()}
    q = "`" if fmt == "markdown" else ""      # a line starting "+ " would be a list item
    legend = (f"{q}{WORSE}{q} worse, {q}{BETTER}{q} better, {q}{SAME}{q} no significant "
              f"change (two-sided Mann-Whitney U over the trials, alpha {args.alpha:g}, "
              f"factor {args.factor:g}), {q}{MISSING_MARK}{q} failed or missing on one side")
    design = ", ".join(designed) or "none"
    if fmt == "markdown":
        body = (f"### Benchmark comparison: contender vs baseline\n\n"
                f"**{summary(rows)}**\n\nbaseline `{named['baseline']}`, "
                f"contender `{named['contender']}`; not matched (differ by design): "
                f"`{design}`\n\n{render(rows, fmt)}\n{legend}\n")
    elif fmt == "table":
        body = (f"baseline {named['baseline']} vs contender {named['contender']}\n"
                f"by design (differ between the sides, not matched): {design}\n"
                f"{render(rows, fmt)}{summary(rows)}  [{legend}]\n")
    else:
        body = render(rows, fmt)
    write(body, args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}: {len(rows)} rows; {summary(rows)}")
    worse = bool((rows["mark"] == WORSE).any())
    return 1 if args.fail_on_regression and worse else 0


def load_sides(args: argparse.Namespace, sides: dict[str, list[str]]
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """The runs of both sides (only those, read by id), their per-trial values and the
    metric columns to judge per experiment; InputError on an unknown id or metric."""
    open_store(args.tracking_uri)               # a missing store: one line
    try:
        expanded = {s: expand_ids(args.tracking_uri, ids) for s, ids in sides.items()}
    except ValueError as exc:
        raise InputError(str(exc)) from None
    run_side = {r: s for s, ids in expanded.items() for runs in ids.values() for r in runs}
    both = set().union(*expanded["baseline"].values()) & set().union(
        *expanded["contender"].values())
    if both:
        raise InputError(f"run {sorted(both)[0]} is on both sides; give each run to one side")
    frame = runs_by_id(args.tracking_uri, list(run_side))
    frame[SIDE] = frame["run_id"].map(run_side)
    if args.experiment:
        wanted = [n for item in args.experiment for n in parse_list(item)]
        frame = frame[frame["experiment"].isin(wanted)]
    where: dict[str, list[str]] = {}
    for key, value in parse_where(args.where or []):
        where.setdefault(resolve_column(frame, key, "--where"), []).append(value)
    frame = filter_where(frame, where)
    for side in SIDES:
        if not (frame[SIDE] == side).any():
            which = " matching --experiment/--where" if args.experiment or args.where else ""
            raise InputError(f"the {side} ({','.join(sides[side])}) has no runs{which}")
    if args.metric:
        names = parse_list(args.metric)
        columns = [resolve_metric(frame, f"{n}.median" if has_values(frame, f"{n}.median")
                                  else n) for n in names if n != "all"]
        metrics = {str(e): columns for e in frame["experiment"].unique()}
        if "all" in names:
            merits = merit_metrics(frame)
            metrics = {e: list(dict.fromkeys([*(f"metric.{m}" for m in merits.get(e, [])),
                                              *cols])) for e, cols in metrics.items()}
    else:
        metrics = {e: [m] for e, m in headlines(frame).items()}
    if not any(metrics.values()):
        raise InputError(f"the runs have no figure of merit; give --metric, one of "
                         f"{listing(available_metrics(frame), 8)}")
    trial = {label(c).removesuffix(".median") for cols in metrics.values() for c in cols}
    history = metric_history(args.tracking_uri, list(frame["run_id"]), sorted(trial))
    return frame, history, metrics


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
    ab = p.add_argument_group("A/B comparison (both --baseline and --contender)")
    ab.add_argument("--baseline", metavar="IDS",
                    help="comma-separated run ids and sweep ids (a sweep's parent run id or "
                         "its sweep.id: its child runs) of the reference")
    ab.add_argument("--contender", metavar="IDS",
                    help="comma-separated run ids and sweep ids compared with the baseline")
    ab.add_argument("--alpha", type=float, default=0.05,
                    help="significance level of the Mann-Whitney U test (default: %(default)s)")
    ab.add_argument("--factor", type=float, default=1.05,
                    help="least ratio (either way) that counts as a change (default: "
                         "%(default)s)")
    ab.add_argument("--fail-on-regression", action="store_true",
                    help="exit 1 when a row is a significant regression (a CI gate)")
    p.set_defaults(func=cmd_compare)
