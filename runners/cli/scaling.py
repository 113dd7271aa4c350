"""``bench scaling``: a strong- or weak-scaling table (and plot) of a sweep over ranks or
nodes, as Ramble's scaling reports and Thicket's scaling studies give.

The computation is :mod:`runners.analysis.scaling`; this module selects the runs (the
options of ``bench compare``, plus ``--sweep-id``), picks the metric and draws the plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from runners.analysis.scaling import AXES, MODES, curve_keys, curves, scaling_table, x_column
from runners.analysis.series import direction_column
from runners.analysis.table import (
    FORMATS,
    available_metrics,
    label,
    listing,
    parse_list,
    render,
    resolve_column,
    resolve_metric,
)
from runners.cli.compare import FALLBACK_METRIC, headlines
from runners.cli.options import add_selection, choice, fail, load_runs, write
from runners.errors import InputError
from runners.tracking.query import STATUSES

if TYPE_CHECKING:
    import pandas as pd


def select_sweep(frame: pd.DataFrame, sweep_id: str, text: str) -> pd.DataFrame:
    """The runs of one sweep (tag ``sweep.id``); none is an InputError naming the sweeps."""
    column = "tag.sweep.id"
    have = sorted({str(v) for v in frame[column].dropna()}) if column in frame else []
    runs = frame[frame[column] == sweep_id] if column in frame else frame.iloc[:0]
    if runs.empty:
        raise InputError(f"no runs match: {text}, sweep.id={sweep_id} (sweeps of the "
                         f"matching runs: {listing(have, 8)})")
    return runs


def pick_metric(frame: pd.DataFrame, name: str | None) -> str:
    """The metric column: ``--metric`` (a base name means its median, even where the last
    trial's value is a metric too), else the runs' headline figure of merit
    (:data:`runners.cli.compare.FALLBACK_METRIC` for runs that declare none).

    Raises
    ------
    InputError
        On an unknown metric (listing available ones), runs without a headline metric, or
        runs of benchmarks whose headline metrics differ.
    """
    if name:
        median = f"metric.{name.removeprefix('metric.')}.median"
        if median in frame.columns and frame[median].notna().any():
            return median                  # total_s: its median, never the last trial's
        return resolve_metric(frame, name)
    heads = headlines(frame)
    if not heads:
        raise InputError(f"the matching runs have no figure of merit and no "
                         f"{FALLBACK_METRIC}; give --metric, one of "
                         f"{listing(available_metrics(frame), 8)}")
    if len(set(heads.values())) > 1:
        which = ", ".join(f"{e}: {label(m)}" for e, m in heads.items())
        raise InputError(f"the matching runs' benchmarks have different headline metrics "
                         f"({which}); pick one with --experiment or give --metric")
    return next(iter(heads.values()))


def tag_value(frame: pd.DataFrame, column: str | None, default: str) -> str:
    """The newest non-empty value of a tag column of the runs, else ``default``."""
    if column is None or column not in frame.columns:
        return default
    values = frame[column].dropna().astype(str)
    values = values[values != ""]
    return str(values.iloc[-1]) if len(values) else default


def plot(table: pd.DataFrame, x: str, path: Path, title: str, ylabel: str) -> None:
    """Time (the median of each point) against x on log-log axes, a curve per group, each
    with its ideal as a dashed line of the same colour; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in curves(table):
        (line,) = ax.plot(rows[x], rows["median"], marker="o", label=name)
        ax.plot(rows[x], rows["ideal"], linestyle="--", color=line.get_color())
    ax.plot([], [], linestyle="--", color="grey", label="ideal (dashed, per curve)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted(table[x].unique())
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cmd_scaling(args: argparse.Namespace) -> int:
    """Strong or weak scaling of a sweep over ranks or nodes: a table and a log-log plot.

    The runs are those of --sweep-id (a sweep's sweep.id tag), --experiment, --where
    KEY=VALUE (e.g. machine=local, fs=tmpfs), --since and --status (default FINISHED), as
    for bench compare. x is --by ranks (param bench.ranks) or nodes (param machine.nodes);
    the metric is --metric (a base name means its median), else the benchmark's headline
    figure of merit. Each curve is one value of the other configuration that differs
    (experiment, machine, fs, any param with several values at one x; or --group KEYS),
    and each of its points is the median over the runs at that x, compared with the
    curve's smallest x: strong (fixed total work): ideal t1*x1/x, speed-up t1/t,
    efficiency speed-up/(x/x1); weak (fixed work per rank): ideal t1, efficiency t1/t,
    scaled speed-up (x/x1)*t1/t. A metric that is better higher (a rate) is read as
    1/time. --plot FILE.png draws the median and the dashed ideal against x, log-log.
    """
    try:
        fmt = choice("--format", args.format, FORMATS)
        mode = choice("--mode", args.mode, MODES)
        axis = choice("--by", args.by, tuple(AXES))
        status = choice("--status", args.status, (*STATUSES, "any"))
        if args.plot and Path(args.plot).suffix.lower() != ".png":
            raise InputError(f"--plot {args.plot!r} is not a .png file; e.g. --plot "
                             "scaling.png")
        _, frame, text = load_runs(args, None if status == "any" else status)
        if args.sweep_id:
            frame = select_sweep(frame, args.sweep_id, text)
            text = f"{text}, sweep.id={args.sweep_id}"
        x = f"param.{AXES[axis]}"
        if x not in frame.columns or frame[x].isna().all():
            raise InputError(f"the matching runs have no param {AXES[axis]} for --by {axis} "
                             f"({text}); try --by {'nodes' if axis == 'ranks' else 'ranks'}")
        metric = pick_metric(frame, args.metric)
        runs = frame[frame[metric].notna() & frame[x].notna()]
        if args.group is None:
            groups = curve_keys(runs, x)
        else:
            groups = [resolve_column(runs, n, "--group") for n in parse_list(args.group)]
        direction = tag_value(runs, direction_column(runs, label(metric)), "lower")
        table = scaling_table(runs, x, metric, groups, mode, higher=direction == "higher")
    except InputError as exc:
        return fail(str(exc))
    what = (f"{mode} scaling of {label(metric)} (median over runs at each {label(x)}) in "
            f"{len(curves(table))} curve(s) over {len(runs)} runs ({text})")
    body = render(table, fmt)
    write(f"{what}\n{body}" if fmt == "table" else body, args.output)
    to_file = args.output not in (None, "-")
    note = sys.stdout if to_file or fmt == "table" else sys.stderr
    if to_file:
        print(f"wrote {args.output}: {len(table)} rows", file=note)
    if args.plot:
        base = label(metric).removesuffix(".median")
        unit = tag_value(runs, f"tag.unit.{base}", "")
        try:
            plot(table, x_column(table), Path(args.plot), f"{mode} scaling of {label(metric)}",
                 f"{label(metric)} ({unit})" if unit else label(metric))
        except OSError as exc:
            return fail(f"cannot write --plot {args.plot}: {exc.strerror or exc}")
        print(f"wrote {args.plot}", file=note)
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench scaling``."""
    doc = cmd_scaling.__doc__ or ""
    p = verbs.add_parser("scaling", help=doc.splitlines()[0], description=doc)
    add_selection(p)
    p.add_argument("--sweep-id", "--sweep", default="", metavar="ID",
                   help="only the jobs of this sweep (the sweep.id tag its runs carry)")
    p.add_argument("--by", default="ranks", metavar="{" + ",".join(AXES) + "}",
                   help="the x axis: ranks (param bench.ranks) or nodes (param "
                        "machine.nodes) (default: %(default)s)")
    p.add_argument("--mode", default="strong", metavar="{" + ",".join(MODES) + "}",
                   help="strong: fixed total work; weak: fixed work per rank "
                        "(default: %(default)s)")
    p.add_argument("--metric", default=None,
                   help="the time (or rate) to scale; a base name means its median, e.g. "
                        "total_s (default: the benchmark's headline figure of merit)")
    p.add_argument("--group", default=None, metavar="KEYS",
                   help="comma-separated keys whose values make separate curves, '' for "
                        "one curve (default: what differs among the runs at one x, and "
                        "experiment, machine, fs)")
    p.add_argument("--status", default="FINISHED", metavar="{" + ",".join(STATUSES) + ",any}",
                   help="only runs with this status (default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write the table to FILE (default: stdout)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw the median and the ideal against x on log-log axes")
    p.set_defaults(func=cmd_scaling)
