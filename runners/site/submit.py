"""``python run.py … site=NAME``: queue the run for the site's agent instead of running it.

On the agent's own host the run goes through its socket (:mod:`runners.site.inbox`): no
MLflow import here, no wait for the next poll.  Elsewhere (or with no agent on this host)
the run is recorded in the store as SCHEDULED, with its config as artifacts, for whichever
agent of the site polls next.  ``site.wait=true`` waits for the run to end and prints its
summary (the exit code is the run's, as for a direct run).
"""

from __future__ import annotations

import getpass
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from runners.errors import ConfigError, RunFailed
from runners.kinds.base import Kind
from runners.site.files import SiteFiles
from runners.site.inbox import send

if TYPE_CHECKING:
    from runners.tracking.writer import MlflowWriter

#: An agent that has not polled for this long is not counted as running.
LIVE_S = 60.0
#: The statistics of a per-trial metric, logged as ``<metric>.<statistic>``.
STATS = frozenset({"min", "median", "mean", "max", "std", "cv"})
#: Exit codes of a run that ended so (as ``python run.py`` without a site).
CODES = {"FINISHED": 0, "FAILED": 1, "KILLED": 130}


def queue_tags(cfg: DictConfig) -> dict[str, str]:
    """The tags of a queued run: its site, when it was queued, its attempt and retries."""
    return {"site": str(cfg.site.name), "site.queued_at": f"{time.time():.3f}",
            "site.attempt": "1", "site.retries": str(int(cfg.site.retries))}


def check(cfg: DictConfig) -> None:
    """Refuse a site config that cannot work (one line, exit 2)."""
    machine = str(cfg.site.machine or "")
    if machine and str(cfg.machine.name) != machine:
        raise ConfigError(f"site={cfg.site.name} runs on machine={machine}, not "
                          f"machine={cfg.machine.name}; drop machine= or pick that machine's "
                          "site")
    if int(cfg.site.retries) < 0 or float(cfg.site.wait_agent_s) <= 0:
        raise ConfigError(f"site.retries={cfg.site.retries} must be >= 0 and "
                          f"site.wait_agent_s={cfg.site.wait_agent_s} > 0 seconds")


def submit(cfg: DictConfig, kind: Kind, out_dir: Path) -> dict[str, Any]:
    """Queue the run for ``cfg.site``; with ``site.wait`` wait for it and print its summary.

    Raises
    ------
    ConfigError
        Bad site settings, or ``site.wait=true`` while no agent takes the run.
    RunFailed
        With ``site.wait=true``, the run ended FAILED or KILLED (its exit code).
    """
    check(cfg)
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    files = SiteFiles.of(cfg)
    if files.pid() is not None:
        result = through_socket(cfg, files, out_dir)
        if result is not None:
            return result
    return through_store(cfg, kind, out_dir)


def through_socket(cfg: DictConfig, files: SiteFiles, out_dir: Path) -> dict[str, Any] | None:
    """Hand the run to this host's agent; None when it does not answer."""
    name, wait = str(cfg.site.name), bool(cfg.site.wait)
    request = {"out_dir": str(out_dir), "wait": wait,
               "submitter": {"host": socket.gethostname(), "user": getpass.getuser()}}
    try:
        replies = send(files.socket, request, timeout=None)
        first = next(replies)
    except (OSError, StopIteration, ValueError):
        return None
    if "error" in first:
        raise ConfigError(f"the agent of site={name} refused the run: {first['error']}")
    run_id = str(first["run_id"])
    print(f"run {run_id} queued for site={name} (agent pid {files.pid()} on this host)",
          file=sys.stderr)
    if not wait:
        return {"queued": run_id, "site": name}
    try:
        final = next(replies)
    except (OSError, StopIteration, ValueError) as exc:
        raise RunFailed(1, f"the agent of site={name} stopped answering while run {run_id} "
                           f"ran ({exc}); see `bench site status {name}`") from None
    if final["status"] == "taken":      # an agent elsewhere claimed it first:
        from runners.tracking.writer import MlflowWriter  # its end is read from the store

        return wait_in_store(cfg, MlflowWriter(str(cfg.tracking.uri)), run_id, True)
    print(final["text"])
    if final["code"]:
        raise RunFailed(int(final["code"]), str(final["text"]))
    return {"run_id": run_id, "status": final["status"], "site": name}


def through_store(cfg: DictConfig, kind: Kind, out_dir: Path) -> dict[str, Any]:
    """Record the run SCHEDULED in the store; say whether an agent will take it."""
    from runners.run.lifecycle import open_run, open_tracker
    from runners.tracking.queue import polled_within

    name = str(cfg.site.name)
    tracker, _ = open_tracker(cfg)
    run_id = open_run(cfg, kind, tracker, out_dir, extra_tags=queue_tags(cfg), queued=True)
    print(f"run {run_id} queued for site={name}", file=sys.stderr)
    live = polled_within(tracker.online, name, LIVE_S)
    if not live and not cfg.site.wait:
        print(f"note: no agent of site={name} has polled the store in the last minute; the "
              f"run waits in the queue until one does: `bench site start {name}`",
              file=sys.stderr)
        return {"queued": run_id, "site": name}
    if not cfg.site.wait:
        return {"queued": run_id, "site": name}
    return wait_in_store(cfg, tracker.online, run_id, bool(live))


def wait_in_store(cfg: DictConfig, writer: MlflowWriter, run_id: str,
                  live: bool) -> dict[str, Any]:
    """Wait for a queued run to end, reading the store; print its end as ``run.py`` would.

    Raises
    ------
    ConfigError
        No agent is ``live`` and none took the run within ``site.wait_agent_s``.
    RunFailed
        The run ended FAILED or KILLED (its exit code).
    """
    from runners.tracking.queue import get_run

    name, limit = str(cfg.site.name), float(cfg.site.wait_agent_s)
    t0 = time.monotonic()
    while True:
        run = get_run(writer, run_id)
        status = str(run.info.status)
        if status in CODES:
            break
        if status == "SCHEDULED" and not live and time.monotonic() - t0 > limit:
            raise ConfigError(f"no agent of site={name} took run {run_id} within {limit:g} s "
                              f"(site.wait_agent_s); it stays queued: start one with "
                              f"`bench site start {name}`")
        time.sleep(0.25)
    tags = run.data.tags
    print(f"run {run_id} {status} on site={name}"
          + (f": {tags.get('failure.stage')} failed ({tags.get('failure.kind')}): "
             f"{tags.get('failure.message')}" if status != "FINISHED" else ""))
    if status == "FINISHED":
        print(stored_table(dict(run.data.metrics), tags.get("fom", "")))
    code = 2 if tags.get("failure.kind") == "sanity" else CODES[status]
    if code:
        raise RunFailed(code, f"run {run_id} {status}")
    return {"run_id": run_id, "status": status, "site": name}


def stored_table(metrics: dict[str, float], fom: str) -> str:
    """The results table of a finished run, from its ``<metric>.<statistic>`` metrics
    (figures of merit first), as ``python run.py`` prints it."""
    from runners.run.summary import format_table

    stats: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        name, _, stat = key.rpartition(".")
        if stat in STATS and name:
            stats.setdefault(name, {})[stat] = value
    full = {k: v for k, v in stats.items() if v.keys() >= STATS}
    first = [m for m in fom.split(",") if m in full]
    return format_table(full, first + sorted(k for k in full if k not in first))
