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
        The ids of the runs that were ended.
    """
    ended: list[str] = []
    dead_markers: set[str] = set()
    for name in dict.fromkeys(experiments):
        for run_id, tags in tracker.running_runs(name):
            if driver_alive(tags) is not False:
                continue
            pid = tags.get("driver.pid", "?")
            dead_markers.add(f"{tags.get('driver.host')}:{pid}:{tags.get('driver.started')}")
            kill_listed(tags.get("driver.parsl_pids", ""))
            if tracker.spool is not None and tracker.spool.has_journal(run_id):
                continue    # the rest of the run is in the spool: `bench sync` closes it
            tracker.set_tags(run_id, {"killed.found_at_next_start": "true"})
            tracker.fail_run(run_id, "driver", "driver_killed",
                             f"the driver (pid {pid} on {tags.get('driver.host')}) ended without "
                             f"closing this run; marked KILLED at the next start by {found_by}",
                             status="KILLED")
            ended.append(run_id)
    for marker in dead_markers:
        n = kill_orphans(marker)
        if n:
            log.info("stopped %d process(es) left by driver %s", n, marker)
    return ended
