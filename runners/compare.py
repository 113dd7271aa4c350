"""``bench compare`` and ``bench regress``: tables and regression verdicts over the store.

``compare`` aggregates one metric of many runs into a table (rows ``--by`` tags/params,
optionally pivoted ``--columns``).  ``regress`` judges every series (experiment, metric,
machine, fs, ``config.hash``) of FINISHED runs, ordered by start time, with
:func:`runners.analysis.regress.judge_frame`, prints the regressions and writes each
verdict back as tags on the newest run of its series.

This module is the command-line layer only: the pure table helpers live in
:mod:`runners.analysis.table`, the regression verdicts per series in
:mod:`runners.analysis.series`; only the ``cmd_*`` functions touch the store, through
:class:`runners.tracking.Tracker`.  Heavy imports (pandas, mlflow) happen inside functions
so ``bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.analysis.series import regress_frame, regress_report, verdict_tags
from runners.analysis.table import (
    AGGS,
    FORMATS,
    InputError,
    _listing,
    available_metrics,
    filter_where,
    label,
    parse_list,
    parse_since,
    parse_where,
    pivot,
    render,
    resolve_column,
    resolve_metric,
)

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")
DEFAULT_METRIC = "total_s.median"
DEFAULT_BY = "machine,fs,bench.ranks"
#: Keys that keep benchmarks apart; ``compare`` adds ``experiment`` to ``--by`` without one.
SEPARATE_BENCHES = frozenset({"experiment", "tag.bench", "param.bench.name"})


def _fail(message: str) -> int:
    """Print the one-line error and return exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _choice(option: str, value: str, choices: Sequence[str]) -> str:
    """``value`` (case-insensitive) if it is one of ``choices``, else InputError."""
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise InputError(f"{option} {value!r} is not valid; use one of {', '.join(choices)}")


def _load(args: argparse.Namespace, status: str | None,
          status_option: bool = True) -> tuple[Any, pd.DataFrame, str]:
    """Open the store and read its runs: ``(tracker, runs table, filter description)``.

    The table is filtered by ``args.where`` too; an empty result is an InputError (whose
    hint names ``--status any`` when the command has that option).
    """
    from runners.tracking import Tracker, local_store_paths

    db = local_store_paths(args.tracking_uri)
    if db is not None and not db.is_file():
        raise InputError(f"no store at {db}; run `python run.py` first or pass "
                         "--tracking-uri sqlite:///PATH/mlflow.db")
    where = parse_where(args.where or [])
    since = None if args.since is None else parse_since(args.since)
    experiments = None
    if args.experiment:
        experiments = [name for item in args.experiment for name in parse_list(item)] or None
    tracker = Tracker(args.tracking_uri, lazy=True)
    try:
        frame = tracker.runs_table(experiments, status=status,
                                   since_ms=None if since is None else since.value // 10**6)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    described = [f"experiment={','.join(experiments) if experiments else 'all'}",
                 f"status={status or 'any'}"]
    if since is not None:
        described.append(f"since={since.strftime('%Y-%m-%d %H:%M')} UTC")
    described += [f"{k}={v}" for k, v in where]
    text = ", ".join(described)
    if frame.empty:
        hints = ["--status any"] if status and status_option else []
        hints += ["an earlier --since"] if since is not None else []
        hint = f"; try {' or '.join(hints)}" if hints else ""
        raise InputError(f"no runs match: {text}{hint}")
    wanted: dict[str, list[str]] = {}
    for key, value in where:
        wanted.setdefault(resolve_column(frame, key, "--where"), []).append(value)
    matched = filter_where(frame, wanted)
    if matched.empty:
        notes = []
        for column, values in wanted.items():
            have = sorted({str(v) for v in frame[column].dropna()})
            if not set(values) & set(have):
                notes.append(f"{label(column)} has {_listing(have, 8)}")
        raise InputError(f"no runs match: {text}" + (f" ({'; '.join(notes)})" if notes else ""))
    return tracker, matched, text


def _write(text: str, output: str | None) -> None:
    """Text to a file (creating its directory) or stdout."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare one metric across runs: a table of its median (or --agg) by tags and params.

    Rows are the --by keys (default machine,fs,bench.ranks), optionally pivoted into
    --columns; each cell aggregates the runs that match --experiment, --status (default
    FINISHED), --since and every --where KEY=VALUE (repeat a key for any of several
    values). A key is a tag first, then a param (machine -> tag machine, bench.ranks ->
    param bench.ranks); experiment and status work too. When the runs span several
    experiments and neither experiment nor bench is a key, experiment is added as the
    first row key. Sweep parent runs are left out.
    """
    try:
        agg = _choice("--agg", args.agg, AGGS)
        fmt = _choice("--format", args.format, FORMATS)
        status = _choice("--status", args.status, (*STATUSES, "any"))
        by_names = parse_list(args.by)
        if not by_names:
            raise InputError(f"--by {args.by!r} names no column; e.g. --by {DEFAULT_BY}")
        col_names = parse_list(args.columns or "")
        _, frame, text = _load(args, None if status == "any" else status)
        metric = resolve_metric(frame, args.metric)
        by = [resolve_column(frame, n, "--by") for n in by_names]
        columns = [resolve_column(frame, n, "--columns") for n in col_names]
    except InputError as exc:
        return _fail(str(exc))
    experiments = frame.loc[frame[metric].notna(), "experiment"].nunique()
    if experiments > 1 and not {*by, *columns} & SEPARATE_BENCHES:
        by = ["experiment", *by]       # never mix the values of different benchmarks
    table = pivot(frame, metric, by, columns or None, agg)
    body = render(table, fmt)
    if fmt == "table":
        runs = int(frame[metric].notna().sum())
        body = f"{agg} of {label(metric)} over {runs} runs ({text})\n{body}"
    _write(body, args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}: {len(table)} rows")
    return 0


def _number(option: str, text: str | None, low: float, high: float, *,
            low_inclusive: bool = False, percent: bool = False) -> float | None:
    """A number option between ``low`` and ``high`` (``5%`` allowed when ``percent``).

    Returns None when the option is unset.
    """
    if text is None:
        return None
    word = text.strip()
    try:
        value = float(word[:-1]) / 100 if percent and word.endswith("%") else float(word)
    except ValueError:
        value = math.nan
    above = value >= low if low_inclusive else value > low
    if not (above and value <= high):
        bracket = "[" if low_inclusive else "("
        example = "0.05 or 5%" if percent else "0.05"
        raise InputError(f"{option} {text!r} is not a number in {bracket}{low:g}, {high:g}]; "
                         f"e.g. {option} {example}")
    return value


def _whole(option: str, text: str | None, low: int) -> int | None:
    """A whole-number option ``>= low``, None if unset."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise InputError(f"{option} {text!r} is not a whole number >= {low}; "
                         f"e.g. {option} {max(low, 5)}")
    return value


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``judge`` keyword arguments the user set (the rest keep judge's defaults).

    Raises
    ------
    InputError
        On a value out of range or options that do not fit together.
    """
    from runners.analysis.regress import judge

    min_effect = _number("--min-effect", args.min_effect, 0.0, 10.0, low_inclusive=True,
                         percent=True)
    if min_effect is not None and min_effect > 1 and not args.min_effect.strip().endswith("%"):
        raise InputError(f"--min-effect {args.min_effect} means {min_effect:.0%}; give a "
                         "fraction or a percentage, e.g. --min-effect 0.05 or 5%")
    options: dict[str, Any] = {
        "min_effect": min_effect,
        "alpha": _number("--alpha", args.alpha, 0.0, 0.5),
        "min_points": _whole("--min-points", args.min_points, 2),
        "latest": _whole("--latest", args.latest, 2),
        "baseline": _whole("--baseline", args.baseline, 2),
        "max_points": _whole("--max-points", args.max_points, 2),
    }
    options = {k: v for k, v in options.items() if v is not None}
    try:
        judge([1.0], **options)
    except ValueError:
        points = options.get("min_points", 3)
        raise InputError(f"--latest and --baseline must be >= --min-points ({points}); "
                         f"e.g. --min-points {points} --latest {max(points, 5)}") from None
    return options


def cmd_regress(args: argparse.Namespace) -> int:
    """Find performance regressions in the history of every benchmark series.

    A series is one metric of one (experiment, machine, fs, config.hash) over FINISHED
    runs, ordered by start time. Each is judged by runners.analysis.regress.judge_frame:
    the points after the most recent step against those before it, a change needing both
    a Mann-Whitney p < --alpha and a relative change >= --min-effect. The better direction
    is the direction.<metric> tag (default lower). Regressions are listed with the range
    where they appeared (time, commit, run ids); the verdict of every series is written as
    tags regress.<metric> (regression, improvement, ok, not enough data) and
    regress.<metric>.change_pct on its newest run unless --dry-run. Exit 1 if any series
    regressed, else 0.
    """
    try:
        fmt = _choice("--format", args.format, FORMATS)
        options = judge_options(args)
        tracker, frame, _ = _load(args, "FINISHED", status_option=False)
        if args.metric:
            wanted = [m for item in args.metric for m in parse_list(item)]
            metrics = list(dict.fromkeys(label(resolve_metric(frame, m)) for m in wanted))
        else:
            metrics = [m for m in available_metrics(frame) if m.endswith(".median")]
            if not metrics:
                raise InputError(f"the matching runs have no *.median metric; give --metric, "
                                 f"one of {_listing(available_metrics(frame), 8)}")
    except InputError as exc:
        return _fail(str(exc))
    result = regress_frame(frame, metrics, **options)
    counts = result["status"].value_counts()
    regressions = int(counts.get("regression", 0))
    shown = result if args.all else result[result["status"] == "regression"]
    report = regress_report(shown, full=fmt == "csv", with_status=args.all)
    lines = []
    if len(shown):
        title = "series" if args.all else "regressions"
        lines.append(render(report, fmt) if fmt == "csv" else f"{title}:\n{render(report, fmt)}")
    elif fmt != "csv":
        lines.append("no regressions\n")
    summary = (f"{len(result)} series checked, {regressions} regressions, "
               f"{int(counts.get('not enough data', 0))} not enough data, "
               f"{int(counts.get('improvement', 0))} improvements")
    if args.dry_run:
        summary += "; dry run: no tags written"
    else:
        tags = verdict_tags(result)
        for run_id, values in tags.items():
            tracker.set_tags(run_id, values)
        summary += f"; verdict tags written on {len(tags)} runs"
    sys.stdout.write("".join(lines))
    print(summary, file=sys.stderr if fmt == "csv" else sys.stdout)
    return 1 if regressions else 0


def _common(p: argparse.ArgumentParser, default_uri: str) -> None:
    """Options shared by ``compare`` and ``regress``."""
    p.add_argument("--tracking-uri", default=default_uri,
                   help="MLflow tracking URI (default: the embedded store %(default)s)")
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="an experiment (benchmark) name; repeat or comma-separate for "
                        "several (default: all experiments)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE",
                   help="keep runs whose tag (else param) KEY equals VALUE, e.g. "
                        "machine=local or bench.ranks=2; repeatable: different keys must "
                        "all match, a repeated key matches any of its values")
    p.add_argument("--since", metavar="WHEN",
                   help="only runs started since an ISO date (2025-01-31, UTC) or an age "
                        "(7d, 12h, 30m, 2w)")
    p.add_argument("--format", default="table", metavar="{table,csv,markdown}",
                   help="output format (default: %(default)s)")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register the ``compare`` and ``regress`` verbs on a ``bench`` sub-parser action.

    Parameters
    ----------
    verbs : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.
    """
    from runners.cli import DEFAULT_URI  # only when the parser is built

    doc = cmd_compare.__doc__ or ""
    p = verbs.add_parser("compare", help=doc.splitlines()[0], description=doc)
    _common(p, DEFAULT_URI)
    p.add_argument("--metric", default=DEFAULT_METRIC,
                   help="metric to compare; a base name means its median, e.g. total_s "
                        "(default: %(default)s)")
    p.add_argument("--by", default=DEFAULT_BY, metavar="KEYS",
                   help="comma-separated keys of the rows (default: %(default)s)")
    p.add_argument("--columns", metavar="KEYS",
                   help="comma-separated keys whose values become columns, e.g. fs")
    p.add_argument("--agg", default="median", metavar="{median,mean,min,max,count}",
                   help="how the runs of a cell are combined (default: %(default)s)")
    p.add_argument("--status", default="FINISHED",
                   metavar="{FINISHED,FAILED,KILLED,RUNNING,SCHEDULED,any}",
                   help="only runs with this status (default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_compare)

    doc = cmd_regress.__doc__ or ""
    r = verbs.add_parser("regress", help=doc.splitlines()[0], description=doc)
    _common(r, DEFAULT_URI)
    r.add_argument("--metric", action="append", metavar="NAME",
                   help="metric to judge, repeatable or comma-separated; a base name means "
                        "its median (default: every *.median metric)")
    r.add_argument("--min-effect", metavar="X",
                   help="smallest relative change of the medians that counts, as a fraction "
                        "or a percentage (default: 0.05 = 5%%)")
    r.add_argument("--alpha", metavar="P",
                   help="significance level of the Mann-Whitney test (default: 0.05)")
    r.add_argument("--min-points", metavar="N",
                   help="fewest points per window; a series needs twice as many to be "
                        "judged (default: 3)")
    r.add_argument("--latest", metavar="N",
                   help="points of the latest window when no step is detected (default: 5)")
    r.add_argument("--baseline", metavar="N",
                   help="at most this many points before the change as baseline "
                        "(default: all of its level)")
    r.add_argument("--max-points", metavar="N",
                   help="only the newest N points of a series are analysed (default: 1000)")
    r.add_argument("--all", action="store_true",
                   help="list every series with its status, not only the regressions")
    r.add_argument("--dry-run", action="store_true", help="judge and print; write no tags")
    r.set_defaults(func=cmd_regress)
