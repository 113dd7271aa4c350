"""``bench site``: start, stop and watch the agents that run queued runs
(``python run.py … site=NAME``), as Balsam's sites.

    bench site start local                 # an agent for conf/site/local.yaml, in the background
    bench site start slurm tracking=server # overrides compose as for run.py
    bench site status local                # what it runs, its blocks, queue, last poll
    bench site ls                          # every agent recorded in the store, on any host
    bench site queue                       # the runs waiting for an agent
    bench site cancel RUN_ID               # take a queued run out of the queue (KILLED)
    bench site stop local
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from runners.cli.options import fail
from runners.config.register import CONF_DIR
from runners.errors import ConfigError, InputError
from runners.site.files import STALE_S, SiteFiles

if TYPE_CHECKING:
    from runners.tracking.writer import MlflowWriter

#: How long ``start`` waits for the agent to say it is ready (Parsl, the store, a block).
READY_S = 120.0


def site_config(name: str, overrides: list[str]) -> DictConfig:
    """The composed config of site ``name``; an unknown site is an InputError."""
    from runners.config.entry import compose

    known = sorted(p.stem for p in (CONF_DIR / "site").glob("*.yaml") if p.stem != "none")
    if name not in known:
        raise InputError(f"no site {name!r}: add conf/site/{name}.yaml or use one of "
                         f"{', '.join(known)}")
    try:
        return compose([f"site={name}", *overrides])
    except ConfigError as exc:
        raise InputError(str(exc)) from None


def cmd_start(args: argparse.Namespace) -> int:
    """Start a site's agent in the background (or in the foreground with --foreground)."""
    try:
        cfg = site_config(args.name, args.overrides)
        files = SiteFiles.of(cfg)
        pid = files.pid()
        if pid is not None:
            raise InputError(f"an agent for site={args.name} already runs on this host (pid "
                             f"{pid}); stop it first with `bench site stop {args.name}`")
        from runners.config.validate import preflight

        preflight(cfg)
    except (InputError, ConfigError) as exc:
        return fail(str(exc))
    files.root.mkdir(parents=True, exist_ok=True)
    files.config.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    argv = [sys.executable, "-m", "runners.site.agent", str(files.config)]
    if args.foreground:
        os.execv(sys.executable, argv)
    with open(files.log, "ab") as log:
        start = log.tell()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(cfg.project_root))
    t0 = time.monotonic()
    while time.monotonic() - t0 < READY_S:
        text = files.log.read_bytes()[start:].decode(errors="replace")
        if "agent ready" in text:
            print(f"site {args.name}: agent started (pid {proc.pid}) for machine="
                  f"{cfg.machine.name}, store {cfg.tracking.uri}\n  log: {files.log}\n"
                  f"  stop it with: bench site stop {args.name}")
            return 0
        if proc.poll() is not None:
            errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
            return fail(errors[-1][len("error: "):] if errors else
                        f"the agent of site={args.name} ended (exit {proc.returncode}) before "
                        f"it was ready; see {files.log}")
        time.sleep(0.1)
    return fail(f"the agent of site={args.name} was not ready after {READY_S:g} s; see "
                f"{files.log}")


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a site's agent on this host: it stops claiming, ends the runs it holds, and
    releases its blocks."""
    try:
        files = SiteFiles.of(site_config(args.name, args.overrides))
    except InputError as exc:
        return fail(str(exc))
    pid = files.pid()
    if pid is None:
        print(f"site {args.name}: no agent runs on this host; nothing to stop")
        return 0
    os.kill(pid, signal.SIGTERM)
    t0 = time.monotonic()
    while files.pid() is not None and time.monotonic() - t0 < args.timeout:
        time.sleep(0.2)
    if files.pid() is not None:
        return fail(f"the agent of site={args.name} (pid {pid}) did not stop within "
                    f"{args.timeout:g} s; see {files.log}")
    print(f"site {args.name}: agent (pid {pid}) stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """What this host's agent of a site runs now, its blocks, its queue, its last poll
    (exit code 3 when no agent of the site runs on this host)."""
    try:
        cfg = site_config(args.name, args.overrides)
    except InputError as exc:
        return fail(str(exc))
    files = SiteFiles.of(cfg)
    pid, st = files.pid(), files.read_status()
    queued = queue_length(writer(str(cfg.tracking.uri)), args.name)
    if pid is None or st is None:
        print(f"site {args.name}: no agent runs on this host; {queued} run(s) queued\n"
              f"  start one with: bench site start {args.name}")
        return 3
    polled = st.get("polled") or 0
    age = f"{time.time() - polled:.1f} s ago" if polled else "not yet"
    print(f"site {args.name}: agent pid {pid} for machine={st['machine']}, store {st['store']}")
    print(f"  running ({len(st['running'])} of {st['workers']}): "
          f"{', '.join(st['running']) or '-'}")
    print(f"  blocks: {', '.join(st['blocks']) or '- (none now: started for the next run)'}")
    print(f"  queue: {queued} run(s); last polled {age}; finished {st['finished']}, "
          f"failed {st['failed']}")
    if st.get("paused"):
        print(f"  claiming paused: {st['paused']}")
    print(f"  log: {st['log']}")
    return 0


def writer(uri: str) -> MlflowWriter:
    """A writer on the store (for its queries)."""
    from runners.tracking.writer import MlflowWriter

    return MlflowWriter(uri)


def queue_length(w: MlflowWriter, site: str) -> int:
    """Runs queued for ``site`` (counted up to 10,000)."""
    from runners.tracking.queue import queued_runs

    return len(queued_runs(w, site, 10000))


def cmd_ls(args: argparse.Namespace) -> int:
    """Every agent recorded in the store (any host), newest first, with its queue.

    State: ``live`` (polled in the last minute), ``silent`` (has not: hung, or its host
    cannot reach the store), ``lost`` (its process is gone from this host; the next agent
    of the site reaps it), or how it ended (``finished``, ``killed``)."""
    from runners.tracking.driver import driver_alive
    from runners.tracking.queue import agent_runs

    w = writer(args.tracking_uri)
    runs = agent_runs(w, live_only=not args.all)
    if not runs:
        print("no site agent is recorded in this store; start one with `bench site start "
              "NAME`")
        return 0
    now = time.time()
    rows = []
    for r in runs:
        t = r.data.tags
        polled = float(t.get("site.polled", "0") or 0)
        state = r.info.status.lower() if r.info.status != "RUNNING" else (
            "lost" if driver_alive(dict(t)) is False else
            "live" if now - polled <= STALE_S else "silent")
        rows.append((t.get("site", "?"), t.get("site.machine", "?"), t.get("driver.host", "?"),
                     t.get("driver.pid", "?"), state,
                     f"{now - polled:.0f} s" if polled else "-",
                     t.get("site.running", "0"), str(queue_length(w, t.get("site", ""))),
                     t.get("site.blocks", "") or "-"))
    head = ("site", "machine", "host", "pid", "state", "polled", "running", "queued", "blocks")
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(f"{str(v):<{w_}}" for v, w_ in zip(row, widths, strict=True)))
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    """The runs waiting for an agent (all sites, or those named), oldest first."""
    from runners.tracking.queue import queued_all

    runs = [r for r in queued_all(writer(args.tracking_uri))
            if not args.sites or r.data.tags["site"] in args.sites]
    now = time.time()
    print(f"{'site':<10} {'run':<32} {'experiment/run name':<40} {'waiting':>9} attempt")
    for r in runs:
        t = r.data.tags
        waited = now - float(t.get("site.queued_at", "0") or 0)
        print(f"{t['site']:<10} {r.info.run_id:<32} "
              f"{(r.info.experiment_id + '/' + (r.info.run_name or ''))[:40]:<40} "
              f"{waited:>8.0f}s {t.get('site.attempt', '1')}")
    print(f"{len(runs)} run(s) queued")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Take queued runs out of the queue: each ends KILLED (failure.kind=cancelled) unless
    an agent claimed it first."""
    import getpass
    import socket

    from runners.tracking.queue import QUEUED, claim, claim_key, get_run
    from runners.tracking.tracker import Tracker

    tracker = Tracker(args.tracking_uri)
    w = tracker.online
    runs = {}
    for run_id in args.run_ids:
        try:
            run = get_run(w, run_id)
        except Exception:       # noqa: BLE001 - MLflow's "not found" has no own class
            return fail(f"no run {run_id} in {args.tracking_uri}; `bench site queue` lists "
                        "the queued ones")
        if run.info.status != QUEUED or "site" not in run.data.tags:
            return fail(f"run {run_id} is {run.info.status}, not queued for a site; only "
                        "SCHEDULED runs can be cancelled (`bench site queue` lists them)")
        runs[run_id] = run
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    taken = 0
    for run_id, run in runs.items():
        if not claim(w, run_id, claim_key(dict(run.data.tags)), f"cancelled by {who}"):
            print(f"run {run_id}: an agent took it first; it runs")
            taken += 1
            continue
        tracker.fail_run(run_id, "queue", "cancelled", f"cancelled by {who} before an agent "
                         "took it", status="KILLED")
        print(f"run {run_id} cancelled (KILLED)")
    return 1 if taken else 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench site`` and its sub-commands."""
    doc = __doc__ or ""
    s = verbs.add_parser("site", help=doc.splitlines()[0],
                         description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func in (("start", cmd_start), ("stop", cmd_stop), ("status", cmd_status)):
        p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0],
                           description=func.__doc__)
        p.add_argument("name", help="the site (conf/site/NAME.yaml)")
        p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                       help="Hydra overrides, as for run.py (e.g. tracking=server)")
        if name == "start":
            p.add_argument("--foreground", action="store_true",
                           help="run the agent in this terminal (Ctrl-C stops it)")
        if name == "stop":
            p.add_argument("--timeout", type=float, default=600.0,
                           help="seconds to wait for the runs it holds to end (default 600)")
        p.set_defaults(func=func)
    from runners.cli.options import add_store

    for name, func in (("ls", cmd_ls), ("queue", cmd_queue), ("cancel", cmd_cancel)):
        p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0],
                           description=func.__doc__)
        add_store(p)
        if name == "ls":
            p.add_argument("--all", action="store_true",
                           help="also agents that stopped or were lost")
        if name == "queue":
            p.add_argument("sites", nargs="*", metavar="SITE", help="only these sites")
        if name == "cancel":
            p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="queued runs")
        p.set_defaults(func=func)
