"""``bench runs``: the newest runs of an experiment as a table."""

from __future__ import annotations

import argparse

from runners.cli.options import add_store, fail, open_store
from runners.errors import InputError


def cmd_runs(args: argparse.Namespace) -> int:
    """List the newest runs of an experiment as a table."""
    try:
        reader = open_store(args.tracking_uri)
    except InputError as exc:
        return fail(str(exc))
    frame = reader.runs_frame(args.experiment, args.limit)
    if frame is None:
        names = ", ".join(reader.experiment_names()) or "none yet"
        return fail(f"no experiment {args.experiment!r}; experiments: {names}")
    print(frame.to_string(index=False) if len(frame) else "no runs")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench runs``."""
    p = verbs.add_parser("runs", help=cmd_runs.__doc__, description=cmd_runs.__doc__)
    add_store(p)
    p.add_argument("--experiment", default="mpi4py_import")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_runs)
