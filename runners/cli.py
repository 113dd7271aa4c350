"""The ``bench`` command: verbs over the MLflow store (``bench --help``, ``bench VERB --help``).

Heavy imports (mlflow, pandas) happen inside the verbs, so ``--help`` answers fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runners.schema import PROJECT_ROOT

DEFAULT_URI = f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"
DEFAULT_ARTIFACTS = str(PROJECT_ROOT / "mlruns" / "artifacts")


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=DEFAULT_URI,
                   help="MLflow tracking URI (default: the embedded store %(default)s)")


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the MLflow UI on a store (default: the embedded SQLite store)."""
    import os
    import shlex

    from runners.tracking import Tracker, local_store_paths

    db = local_store_paths(args.tracking_uri)
    if db is not None and not db.exists():
        print(f"error: no store at {db}; run `python run.py` first or pass --tracking-uri",
              file=sys.stderr)
        return 2
    cmd = Tracker.ui_argv(args.tracking_uri, args.artifact_root, args.host, args.port)
    print(f"MLflow UI on http://{args.host}:{args.port}  ({shlex.join(cmd)})", flush=True)
    if args.print_only:
        return 0
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


def cmd_runs(args: argparse.Namespace) -> int:
    """List the newest runs of an experiment as a table."""
    from runners.tracking import Tracker, local_store_paths

    db = local_store_paths(args.tracking_uri)
    if db is not None and not db.exists():
        print(f"error: no store at {db}; run `python run.py` first", file=sys.stderr)
        return 2
    tracker = Tracker(args.tracking_uri)
    frame = tracker.runs_frame(args.experiment, args.limit)
    if frame is None:
        names = ", ".join(tracker.experiment_names()) or "none yet"
        print(f"error: no experiment {args.experiment!r}; experiments: {names}", file=sys.stderr)
        return 2
    print(frame.to_string(index=False) if len(frame) else "no runs")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per verb."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    ui = verbs.add_parser("ui", help=cmd_ui.__doc__, description=cmd_ui.__doc__)
    _store_args(ui)
    ui.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--print-only", action="store_true", help="print the command, do not start")
    ui.set_defaults(func=cmd_ui)
    runs = verbs.add_parser("runs", help=cmd_runs.__doc__, description=cmd_runs.__doc__)
    _store_args(runs)
    runs.add_argument("--experiment", default="mpi4py_import")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(func=cmd_runs)
    from runners import analytics_cli, compare, nightly, publish, report_cli, schedule, sync_cli

    compare.add_parser(verbs)
    report_cli.add_parser(verbs)
    analytics_cli.add_parser(verbs)
    publish.add_parser(verbs)
    nightly.add_parser(verbs)
    schedule.add_parser(verbs)
    sync_cli.add_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bench`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
