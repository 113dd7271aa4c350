"""``bench ui``: the MLflow UI on a store (default: the embedded SQLite store)."""

from __future__ import annotations

import argparse
import os
import shlex

from runners.cli.options import DEFAULT_ARTIFACTS, add_store, fail, open_store
from runners.errors import InputError
from runners.tracking.server import UI_ENV, ui_argv, ui_url


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the MLflow UI on a store (default: the embedded SQLite store).

    The UI opens in its model-training view (runs, charts, comparison); MLflow's GenAI
    job workers are not started (a benchmark store needs none), so stopping the UI with
    Ctrl-C or SIGTERM leaves no process behind.
    """
    try:
        open_store(args.tracking_uri)
    except InputError as exc:
        return fail(str(exc))
    cmd = ui_argv(args.tracking_uri, args.artifact_root, args.host, args.port)
    env = " ".join(f"{k}={v}" for k, v in UI_ENV.items())
    print(f"MLflow UI on {ui_url(args.host, args.port, 'experiments')}  "
          f"({env} {shlex.join(cmd)})", flush=True)
    if args.print_only:
        return 0
    os.environ.update(UI_ENV)
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench ui``."""
    doc = cmd_ui.__doc__ or ""
    p = verbs.add_parser("ui", help=doc.splitlines()[0], description=doc)
    add_store(p)
    p.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--print-only", action="store_true", help="print the command, do not start")
    p.set_defaults(func=cmd_ui)
