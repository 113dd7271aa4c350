"""``bench analytics``: throughput and utilization of a run, a sweep or sites, from task events.

Every run records its tasks' state transitions as ``events/events.csv``
(:mod:`runners.run.task_events`); this verb gathers them for one run, for every job of a sweep,
or for every run queued through some site agents (tag ``site``, across experiments), draws
tasks completed over time and tasks running at once, and prints a summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from runners.analysis.table import listing, parse_list, parse_since
from runners.analysis.throughput import (
    SITE,
    site_names,
    site_summaries,
    summary,
    throughput_by,
    utilization_by,
    with_site,
)
from runners.cli.options import add_store, fail, open_store
from runners.errors import InputError
from runners.tracking.query import StoreReader

if TYPE_CHECKING:
    import pandas as pd


def gather(reader: StoreReader, run_ids: list[str], scratch: Path) -> pd.DataFrame | None:
    """The events of ``run_ids`` concatenated, with a ``run_id`` column (None: no events)."""
    import pandas as pd

    frames = []
    for run_id in run_ids:
        local = reader.download_artifact(run_id, "events/events.csv", str(scratch / run_id))
        if local is not None:
            frames.append(pd.read_csv(local).assign(run_id=run_id))
    return pd.concat(frames, ignore_index=True) if frames else None


def plot(events: pd.DataFrame, out_dir: Path, title: str, by: str | None = None
         ) -> list[Path]:
    """``throughput.png`` and ``utilization.png`` in ``out_dir``; with ``by``, one line per
    value of that column of ``events`` (e.g. ``site``), on one clock, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if by is None:
        by, events = "line", events.assign(line=title)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for name, frame, col, ylabel in (
            ("throughput", throughput_by(events, by), "completed", "tasks completed"),
            ("utilization", utilization_by(events, by), "busy", "tasks running")):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for key, line in frame.groupby(by, sort=False):
            ax.step(line["time"], line[col], where="post", label=str(key))
        ax.set_xlabel("seconds since the first task was submitted")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {name}")
        if by != "line":
            ax.legend(title=by, fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    return made


def gather_events(reader: StoreReader, run_ids: list[str], title: str
                  ) -> pd.DataFrame | None:
    """:func:`gather` through a scratch folder removed afterwards; a store that cannot give
    them is an InputError naming ``title``."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="bench-events-") as scratch:
            return gather(reader, run_ids, Path(scratch))
    except Exception as exc:     # an unknown run id, an unreachable store
        raise InputError(f"cannot read the events of {title}: "
                         f"{' '.join(str(exc).split())[:300]}") from None


def wanted_sites(options: list[str], have: list[str], where: str) -> list[str]:
    """The sites of the ``--site`` options (``all``: every one in ``have``), in order;
    a site with no runs is an InputError listing those that have some."""
    sites = [name for item in options for name in parse_list(item)]
    sites = list(dict.fromkeys(s for name in sites for s in (have if name == "all" else [name])))
    missing = [s for s in sites if s not in have]
    if not sites:
        raise InputError("--site needs a site name, e.g. --site local, or --site all")
    if not have:
        raise InputError(f"no runs with a site tag in {where}; queue some with "
                         "`python run.py ... site=NAME`")
    if missing:
        raise InputError(f"no runs with site {', '.join(map(repr, missing))} in "
                         f"{where}; sites: {listing(have)} (or --site all)")
    return sites


def site_report(args: argparse.Namespace) -> int:
    """``--site``: every run of the sites, across experiments, one summary line per site
    and one line per site in the plots."""
    reader = open_store(args.tracking_uri)
    since = None if args.since is None else parse_since(args.since)
    since_ms = None if since is None else int(since.timestamp() * 1000)    # year 2999 too
    try:
        runs = reader.runs_table(None, since_ms=since_ms, columns=[SITE, f"{SITE}.*"])
    except ValueError as exc:
        raise InputError(str(exc)) from None
    where = args.tracking_uri
    if since is not None:
        where += f" since {since.strftime('%Y-%m-%d %H:%M')} UTC"
    sites = wanted_sites(args.site, site_names(runs), where)
    runs = runs[runs[SITE].isin(sites)]
    ended = runs[runs["status"] != "SCHEDULED"]["run_id"].tolist()   # queued: no events yet
    events = gather_events(reader, ended, f"the runs of site {', '.join(sites)}")
    if events is None:
        raise InputError(f"no run of site {', '.join(sites)} has events/events.csv yet "
                         "(queued or running runs, and parsl_perf runs, have none)")
    table = site_summaries(runs, events, sites)
    for site, s in table.iterrows():
        pending = f", {s['pending']:.0f} queued or running" if s["pending"] else ""
        wait = (f"; queue wait median {s['wait_median_s']:.2f} s, p95 {s['wait_p95_s']:.2f} s"
                if s["waits"] else "")
        print(f"site {site}: {s['runs']:.0f} runs ({s['finished']:.0f} finished, "
              f"{s['failed']:.0f} failed{pending}); {s['completed']:.0f} tasks completed "
              f"({s['tasks_failed']:.0f} failed) in {s['span_s']:.1f} s; throughput "
              f"{s['tasks_per_min']:.2f} tasks/min, {s['runs_per_min']:.2f} runs/min; "
              f"busy workers mean {s['mean_busy']:.2f}, peak {s['peak_busy']:.0f}{wait}")
    title = f"site {', '.join(sites)}" if len(sites) < 4 else f"{len(sites)} sites"
    tagged = with_site(events, runs)
    tagged = tagged.iloc[tagged["site"].map(sites.index).argsort(kind="stable")]  # legend order
    for path in plot(tagged, Path(args.output), title, by="site"):
        print(f"  {path}")
    return 0


def cmd_analytics(args: argparse.Namespace) -> int:
    """Throughput and utilization of a run, of every job of a sweep, or of every run of
    some sites, from task events."""
    if args.site and (args.run_id or args.sweep_id):
        return fail("give --site alone, or one of --run-id/--sweep-id: a site's runs are "
                    "chosen by their site tag")
    if args.since is not None and not args.site:
        return fail("--since selects the runs of --site; --run-id/--sweep-id name theirs")
    try:
        if args.site:
            return site_report(args)
        return one_report(args)
    except InputError as exc:
        return fail(str(exc))


def one_report(args: argparse.Namespace) -> int:
    """``--run-id`` or ``--sweep-id``: one summary line and one line in each plot."""
    if bool(args.run_id) == bool(args.sweep_id):
        raise InputError("give one of --run-id RUN, --sweep-id SWEEP (the parent's sweep.id "
                         "tag) or --site NAME")
    reader = open_store(args.tracking_uri)
    if args.run_id:
        run_ids, title = [args.run_id], f"run {args.run_id[:12]}"
    else:
        table = reader.runs_table(None)
        col = "tag.sweep.id"
        run_ids = table[table[col] == args.sweep_id]["run_id"].tolist() if col in table else []
        title = f"sweep {args.sweep_id}"
        if not run_ids:
            raise InputError(f"no runs with sweep.id={args.sweep_id!r} in {args.tracking_uri}")
    events = gather_events(reader, run_ids, title)
    if events is None:
        raise InputError(f"{title} has no events/events.csv (runs recorded before events "
                         "were kept, or parsl_perf runs, have none)")
    s = summary(events)
    print(f"{title}: {s['tasks']:.0f} tasks ({s['completed']:.0f} completed, "
          f"{s['failed']:.0f} failed) in {s['makespan_s']:.1f} s; "
          f"throughput {s['throughput_per_s']:.2f} tasks/s; "
          f"busy workers mean {s['mean_busy']:.2f}, peak {s['peak_busy']:.0f}")
    for path in plot(events, Path(args.output), title):
        print(f"  {path}")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench analytics``."""
    p = verbs.add_parser("analytics", help=cmd_analytics.__doc__,
                         description=cmd_analytics.__doc__)
    add_store(p)
    p.add_argument("--run-id", default="", help="one run")
    p.add_argument("--sweep-id", default="", help="every job of a sweep (its sweep.id tag)")
    p.add_argument("--site", action="append", metavar="NAME",
                   help="every run queued through a site agent (its site tag), across "
                        "experiments; repeat or comma-separate for several, 'all' for every "
                        "site in the store: one summary line and one plotted line per site")
    p.add_argument("--since", metavar="WHEN",
                   help="with --site: only runs started since an ISO date (2025-01-31, UTC) "
                        "or an age (7d, 12h, 30m, 2w)")
    p.add_argument("--output", default="analytics",
                   help="where the PNG plots go (default: %(default)s)")
    p.set_defaults(func=cmd_analytics)
