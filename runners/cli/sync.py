"""``bench sync``: upload the runs journaled while the tracking server was unreachable.

See :mod:`runners.tracking.spool`.  Each journal is uploaded exactly once (then moved to
``<spool>/synced/``); a journal whose driver still runs is left for later, and one whose
driver died is closed KILLED (``failure.kind=driver_killed``) first.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runners.cli.options import DEFAULT_SPOOL
from runners.run.progress import Progress
from runners.tracking.replay import Replayer
from runners.tracking.server import probe
from runners.tracking.spool import pending
from runners.tracking.store import is_remote
from runners.tracking.sync import sync


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload spooled runs to their tracking server, exactly once."""
    import os

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    waiting = pending(args.spool)
    if args.list or not waiting:
        for directory in waiting:
            print(directory.name)
        print(f"{len(waiting)} run(s) waiting in {args.spool}")
        return 0
    if args.uri is not None and is_remote(args.uri):
        reason = probe(args.uri)
        if reason is not None:
            print(f"error: the tracking server {args.uri} cannot be reached ({reason}); "
                  "start it (cluster/mlflow/start.sh) or pass the right --uri", file=sys.stderr)
            return 2

    def connect(uri: str) -> Replayer:
        reason = probe(uri) if is_remote(uri) else None
        if reason is not None:
            raise ConnectionError(f"{uri} cannot be reached: {reason}")
        return Replayer(uri)

    bar = Progress(len(waiting), "runs")
    done = 0

    def step(_local: str) -> None:
        nonlocal done
        done += 1
        bar.update(done=done)

    try:
        report = sync(args.spool, connect, args.uri, step, args.foreign)
    finally:
        bar.close()
    for local, server in report.uploaded:
        print(f"uploaded {local} -> run {server}")
    for local in report.closed_stale:
        print(f"closed {local} KILLED first: its driver is gone")
    for local, why in report.skipped:
        print(f"left {local}: {why}")
    for local, why in report.failed:
        print(f"error: {local} not uploaded: {why}", file=sys.stderr)
    print(f"{len(report.uploaded)} uploaded, {len(report.skipped)} left for later, "
          f"{len(report.failed)} failed")
    return 1 if report.failed else 0


def add_parser(verbs: Any) -> None:
    """Register ``bench sync``."""
    p = verbs.add_parser(
        "sync", help=cmd_sync.__doc__,
        description="Upload the runs journaled while the tracking server could not be reached "
                    "(tracking=server with tracking.spool). Each journal is uploaded exactly "
                    "once, then moved to <spool>/synced/; a journal whose driver still runs is "
                    "left for later, one whose driver died is closed KILLED first. Exit 1 when "
                    "a journal could not be uploaded, 2 when --uri cannot be reached.")
    p.add_argument("--spool", default=DEFAULT_SPOOL, help="the spool directory (default: "
                   "%(default)s, tracking.spool of tracking=server)")
    p.add_argument("--uri", default=None, help="upload to this tracking URI instead of the "
                   "server each run was meant for")
    p.add_argument("--list", action="store_true", help="list the waiting runs, upload nothing")
    p.add_argument("--foreign", action="store_true",
                   help="close (KILLED) unfinished runs whose driver ran on another host: "
                        "only when those drivers are known to be gone")
    p.set_defaults(func=cmd_sync)
