"""``bench analytics``: throughput and utilization of a run or a sweep, from its task events.

Every run records its tasks' state transitions as ``events/events.csv``
(:mod:`runners.run.task_events`); this verb gathers them for one run, or for every job of a sweep,
draws tasks completed over time and tasks running at once, and prints a summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from runners.analysis.throughput import summary, throughput, utilization
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


def plot(events: pd.DataFrame, out_dir: Path, title: str) -> list[Path]:
    """``throughput.png`` and ``utilization.png`` in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for name, frame, col, ylabel in (
            ("throughput", throughput(events), "completed", "tasks completed"),
            ("utilization", utilization(events), "busy", "tasks running")):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.step(frame["time"], frame[col], where="post")
        ax.set_xlabel("seconds since the first task was submitted")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    return made


def cmd_analytics(args: argparse.Namespace) -> int:
    """Throughput and utilization of a run or of every job of a sweep, from task events."""
    import tempfile

    if bool(args.run_id) == bool(args.sweep_id):
        return fail("give one of --run-id RUN or --sweep-id SWEEP (the parent's sweep.id tag)")
    try:
        reader = open_store(args.tracking_uri)
    except InputError as exc:
        return fail(str(exc))
    if args.run_id:
        run_ids, title = [args.run_id], f"run {args.run_id[:12]}"
    else:
        table = reader.runs_table(None)
        col = "tag.sweep.id"
        run_ids = table[table[col] == args.sweep_id]["run_id"].tolist() if col in table else []
        title = f"sweep {args.sweep_id}"
        if not run_ids:
            return fail(f"no runs with sweep.id={args.sweep_id!r} in {args.tracking_uri}")
    try:
        events = gather(reader, run_ids, Path(tempfile.mkdtemp(prefix="bench-events-")))
    except Exception as exc:     # an unknown run id, an unreachable store
        return fail(f"cannot read the events of {title}: {' '.join(str(exc).split())[:300]}")
    if events is None:
        return fail(f"{title} has no events/events.csv (runs recorded before events were "
                     "kept, or parsl_perf runs, have none)")
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
    p.add_argument("--output", default="analytics",
                   help="where the PNG plots go (default: %(default)s)")
    p.set_defaults(func=cmd_analytics)
