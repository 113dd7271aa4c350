"""Find what a killed driver left behind: runs still RUNNING, and its Parsl processes.

Every run carries ``driver.host``, ``driver.pid`` and ``driver.started`` (the driver's
process start time).  At the next start, a RUNNING run whose driver is gone from this
host is ended KILLED with ``failure.kind=driver_killed``.  Runs started on another host
are left alone: their driver cannot be checked from here.

The driver exports ``BENCH_DRIVER=<host>:<pid>:<started>`` before it starts Parsl, so the
interchange and worker pools it spawned carry the marker in their environment and can be
stopped when the driver died without cleaning up.
"""

from __future__ import annotations

import logging
import os

import psutil

from runners.stages.measure import kill_tree
from runners.tracking.driver import driver_alive, driver_tags
from runners.tracking.queue import QUEUED, claim, set_status
from runners.tracking.tracker import Tracker

log = logging.getLogger(__name__)
MARKER = "BENCH_DRIVER"


def mark_children() -> None:
    """Export this driver's marker, so the processes it starts inherit it."""
    tags = driver_tags()
    os.environ[MARKER] = ":".join(tags[k] for k in ("driver.host", "driver.pid",
                                                   "driver.started"))


def parsl_pids(dfk: object) -> str:
    """``pid@start,…`` of the DataFlowKernel's interchange processes (tag ``driver.parsl_pids``).

    The interchange renames itself (setproctitle), which wipes its environment and so the
    ``BENCH_DRIVER`` marker; it is found by pid and start time instead.
    """
    out = []
    for executor in getattr(dfk, "executors", {}).values():
        proc = getattr(executor, "interchange_proc", None)
        pid = getattr(proc, "pid", None)
        if pid:
            try:
                out.append(f"{pid}@{psutil.Process(pid).create_time():.2f}")
            except psutil.Error:
                continue
    return ",".join(out)


def kill_listed(listed: str) -> int:
    """Kill the ``pid@start`` processes of :func:`parsl_pids` that still run (same start)."""
    killed = 0
    for item in filter(None, listed.split(",")):
        pid, _, start = item.partition("@")
        try:
            if abs(psutil.Process(int(pid)).create_time() - float(start)) < 1.0:
                kill_tree(int(pid))
                killed += 1
        except (psutil.Error, ValueError):
            continue
    return killed


def kill_orphans(marker: str) -> int:
    """Kill processes (and their trees) whose environment carries a dead driver's marker."""
    killed = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER) == marker:
                kill_tree(proc.pid)
                killed += 1
        except (psutil.Error, OSError):
            continue
    return killed


def reap_stale(tracker: Tracker, experiments: list[str], found_by: str) -> list[str]:
    """End KILLED every RUNNING run of ``experiments`` whose driver died on this host.

    Parameters
    ----------
    tracker : Tracker
        The store.
    experiments : list of str
        Experiment names to look in.
    found_by : str
        Who found them (written into the failure message).

    Returns
    -------
    list of str
        The ids of the runs that were ended (or requeued).
    """
    found = [run for name in dict.fromkeys(experiments) for run in tracker.running_runs(name)]
    return reap_runs(tracker, found, found_by)


def reap_runs(tracker: Tracker, runs: list[tuple[str, dict[str, str]]],
              found_by: str) -> list[str]:
    """End KILLED (or requeue) each of ``runs`` whose driver died on this host, and stop the
    Parsl processes the dead drivers left.

    A run a site's agent was running (tag ``site``) ends with ``failure.kind=agent_lost``,
    or goes back to the queue while its attempts (``site.attempt``) do not exceed the
    retries its user asked for (``site.retries``, from ``site.retries=N``).
    """
    ended: list[str] = []
    dead_markers: set[str] = set()
    for run_id, tags in runs:
        if driver_alive(tags) is not False:
            continue
        pid = tags.get("driver.pid", "?")
        dead_markers.add(f"{tags.get('driver.host')}:{pid}:{tags.get('driver.started')}")
        kill_listed(tags.get("driver.parsl_pids", ""))
        if tracker.spool is not None and tracker.spool.has_journal(run_id):
            continue    # the rest of the run is in the spool: `bench sync` closes it
        who = f"the {'agent' if 'site' in tags else 'driver'} (pid {pid} on " \
              f"{tags.get('driver.host')})"
        ended.append(run_id)
        if "site" in tags and requeue(tracker, run_id, tags, f"{who} was lost; found by "
                                                             f"{found_by}"):
            continue
        tracker.set_tags(run_id, {"killed.found_at_next_start": "true"})
        tracker.fail_run(run_id, "agent" if "site" in tags else "driver",
                         "agent_lost" if "site" in tags else "driver_killed",
                         f"{who} ended without closing this run; marked KILLED at the next "
                         f"start by {found_by}", status="KILLED")
    for marker in dead_markers:
        n = kill_orphans(marker)
        if n:
            log.info("stopped %d process(es) left by driver %s", n, marker)
    return ended


def requeue(tracker: Tracker, run_id: str, tags: dict[str, str], why: str) -> bool:
    """Put a lost agent's run back in its site's queue if it has retries left; True if so.

    The next attempt is claimed under a new key (``site.claim.<attempt>``); the requeue
    itself is claimed too, so two reapers requeue a run once.
    """
    attempt = int(tags.get("site.attempt", "1"))
    if attempt > int(tags.get("site.retries", "0")):
        return False
    me = ":".join(driver_tags().values())
    if not claim(tracker.online, run_id, f"site.requeue.{attempt}", me):
        return True     # another reaper requeued it
    tracker.set_tags(run_id, {"site.attempt": str(attempt + 1),
                              f"site.lost.{attempt}": why})
    set_status(tracker.online, run_id, QUEUED)
    log.info("run %s requeued (attempt %d): %s", run_id, attempt + 1, why)
    return True
