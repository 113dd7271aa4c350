"""``bench baseline show|accept|ignore``: the reference of every series, learnt from its
history, and the annotations that say a step was intended or a series is to be left alone.

The annotations are run tags (:mod:`runners.analysis.annotations`): they live in the
tracking store, travel through ``publish``/``import`` and ``sync``, and say who, when and
why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from runners.analysis.annotations import (
    ACCEPTED,
    IGNORED,
    id_column,
    matching,
    note,
    now,
    tag_key,
)
from runners.analysis.table import (
    FORMATS,
    listing,
    render,
)
from runners.analysis.verdicts import judge_all
from runners.cli.options import (
    add_selection,
    add_store,
    choice,
    fail,
    load_runs,
    whole_option,
)
from runners.cli.regress import judged_metrics, min_effect_option, reference_options
from runners.errors import InputError
from runners.tracking.tracker import Tracker

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DAYS = 30


def _verdicts(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference verdict of every series of the selected runs, and their long table."""
    _, frame, _ = load_runs(args, "FINISHED", status_option=False)
    metrics, _ = judged_metrics(args, frame)
    options: dict[str, Any] = {"min_effect": min_effect_option(args.min_effect),
                               "min_points": whole_option("--min-points", args.min_points, 2)}
    options = {k: v for k, v in options.items() if v is not None}
    return judge_all(frame, metrics, "reference", {}, reference_options(args, options))


def _selected(result: pd.DataFrame, pattern: str | None) -> pd.DataFrame:
    """The verdict rows whose series id matches ``pattern``; InputError when none does."""
    if pattern is None:
        return result
    ids = matching(result["series"], pattern)
    if not ids:
        raise InputError(f"no series matches {pattern!r}; the series are "
                         f"{listing(sorted(result['series']), 5)} (patterns may use *)")
    return result[result["series"].isin(ids)]


def cmd_show(args: argparse.Namespace) -> int:
    """Show the reference of every series: median and band of its accepted history.

    A series is one metric of one (experiment, machine, fs, config.hash); its id,
    experiment/machine/fs/config.hash/metric, is what --series matches (with * and ?).
    The reference is the median of the last --window runs that fell inside it, counted
    from the newest `bench baseline accept`, with a band of +- --sigmas noise sigmas
    (widened for few points; at least --min-effect of the median); the status is the
    newest run's verdict against it, as `bench regress --against reference` gives it.
    """
    try:
        fmt = choice("--format", args.format, FORMATS)
        result, _ = _verdicts(args)
        rows = _selected(result, args.series)
    except InputError as exc:
        return fail(str(exc))
    table = rows.assign(
        reference=rows["baseline_median"], low=rows["band_low"], high=rows["band_high"],
        points=rows["n_baseline"], latest=rows["latest_median"],
        since=rows["reference_from"].astype(str).str[:12],
        note=[r.reason.split("; found:")[0] if r.status == "ignored" else r.accepted
              for r in rows.itertuples()],
    )[["series", "reference", "low", "high", "points", "since", "latest", "status", "note"]]
    sys.stdout.write(render(table.reset_index(drop=True), fmt))
    return 0


def _write(args: argparse.Namespace, what: str) -> int:
    """Write one annotation (``accepted`` or ``ignored``) on each selected series."""
    try:
        if not (args.reason or "").strip():
            example = "new MPI, slower start expected" if what == "accept" else "maintenance"
            raise InputError(f"{what} needs --reason TEXT saying why, e.g. --reason "
                             f"'{example}'")
        if not args.series:
            raise InputError(f"{what} needs --series PATTERN naming the series; "
                             "`bench baseline show` lists them")
        until = None
        if what == "ignore":
            until = _until(args.until, args.days)
        result, long = _verdicts(args)
        rows = _selected(result, args.series)
        long = long.assign(series=id_column(long))
        plan: list[tuple[str, str, str]] = []  # (series, run id, tag)
        for r in rows.itertuples():
            if what == "ignore":
                plan.append((r.series, str(r.newest_run_id), tag_key(IGNORED, r.metric)))
                continue
            run = args.from_run
            if run is None and r.status in ("regression", "improvement"):
                run = str(r.run_id_after)
            if run is None:
                raise InputError(f"series {r.series} has no step outside its reference to "
                                 f"accept; give --from RUN_ID (the first run of the new level)")
            if not (long["run_id"].eq(run) & long["series"].eq(r.series)).any():
                raise InputError(f"run {run} is not a FINISHED run of series {r.series} "
                                 "since its last accepted step; see `bench baseline show`")
            plan.append((r.series, str(run), tag_key(ACCEPTED, r.metric)))
    except InputError as exc:
        return fail(str(exc))
    value = note(args.reason.strip(), **({"until": until.isoformat()} if until else {}))
    writer = None if args.dry_run else Tracker(args.tracking_uri)
    for series, run, tag in plan:
        if writer is not None:
            writer.set_tags(run, {tag: value})
        done = f"ignored until {until:%Y-%m-%d %H:%M} UTC" if until else f"accepted from run {run}"
        print(f"{'dry run: would be ' if writer is None else ''}{series}: {done}")
    return 0


def _until(text: str | None, days: str | None) -> dt.datetime:
    """The expiry of an ignore: ``--until`` (ISO date/time, UTC) or now + ``--days``."""
    if text is not None:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"--until {text!r} is not an ISO date; e.g. --until "
                             f"{(now() + dt.timedelta(days=DEFAULT_DAYS)):%Y-%m-%d}") from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        if when <= now():
            raise InputError(f"--until {text} is in the past; give a later date")
        return when
    count = whole_option("--days", days, 1) or DEFAULT_DAYS
    return now() + dt.timedelta(days=count)


def cmd_accept(args: argparse.Namespace) -> int:
    """Mark a step as intended: the series' reference restarts from a run on.

    The run is --from RUN_ID, else the first run outside the current reference. The
    annotation (a baseline.accepted.<metric> tag on that run: who, when, --reason) lives
    in the tracking store; `bench regress` judges the series from that run on.
    """
    return _write(args, "accept")


def cmd_ignore(args: argparse.Namespace) -> int:
    """Silence the verdicts of a series until a date, with a reason.

    Its regressions are listed as ignored (not counted in the exit code, not notified)
    until --until DATE or for --days N (default 30). The annotation is a
    baseline.ignored.<metric> tag on the series' newest run: who, when, why, until when.
    """
    return _write(args, "ignore")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="metric(s), repeatable or comma-separated (default: the figures "
                        "of merit)")
    p.add_argument("--window", metavar="N", help="accepted runs in the band (default: 20)")
    p.add_argument("--sigmas", metavar="K",
                   help="half-width of the band in noise sigmas (default: 3.5)")
    p.add_argument("--min-effect", metavar="X",
                   help="smallest half-width, a fraction of the median (default: 0.02)")
    p.add_argument("--min-points", metavar="N",
                   help="accepted runs before a band exists (default: 5)")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench baseline`` and its sub-commands."""
    b = verbs.add_parser("baseline", help="references of the series (show), and steps "
                         "accepted as intended (accept) or series ignored (ignore)",
                         description=__doc__)
    sub = b.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func in (("show", cmd_show), ("accept", cmd_accept), ("ignore", cmd_ignore)):
        doc = func.__doc__ or ""
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        if name == "show":
            add_selection(p)
        else:
            add_store(p)
            p.add_argument("--experiment", action="append", metavar="NAME",
                           help="only series of this experiment")
            p.set_defaults(where=None, since=None, format="table")
            p.add_argument("--reason", metavar="TEXT", help="why (required)")
            p.add_argument("--dry-run", action="store_true",
                           help="say what would be written; write nothing")
        p.add_argument("--series", metavar="PATTERN",
                       help="experiment/machine/fs/config.hash/metric, * and ? allowed "
                            "(see `bench baseline show`)")
        _common(p)
        if name == "accept":
            p.add_argument("--from", dest="from_run", metavar="RUN_ID",
                           help="first run of the accepted level (default: the first run "
                                "outside the reference)")
        if name == "ignore":
            p.add_argument("--until", metavar="DATE", help="ISO date (UTC) it ends")
            p.add_argument("--days", metavar="N",
                           help=f"days it lasts (default: {DEFAULT_DAYS})")
        p.set_defaults(func=func)
