"""The driver: the process that writes a run (``python run.py``, a sweep, ``bench sync``).

Every run, and every journal of the spool, records its driver (``driver.host``,
``driver.pid``, ``driver.started``: the process start time), so that a run left RUNNING
can later be told apart from one whose driver still runs.
"""

from __future__ import annotations

import socket

import psutil


def driver_tags() -> dict[str, str]:
    """The tags that identify this driver process."""
    me = psutil.Process()
    return {"driver.host": socket.gethostname(), "driver.pid": str(me.pid),
            "driver.started": f"{me.create_time():.2f}"}


def driver_alive(tags: dict[str, str]) -> bool | None:
    """Whether the driver named by a run's tags still runs (None: another host, or unknown).

    A pid that was reused by another process counts as gone (its start time differs).
    """
    if tags.get("driver.host") != socket.gethostname() or "driver.pid" not in tags:
        return None
    try:
        proc = psutil.Process(int(tags["driver.pid"]))
        return abs(proc.create_time() - float(tags.get("driver.started", "0"))) < 1.0
    except (psutil.NoSuchProcess, ValueError):
        return False
