"""Task state transitions of a run: recorded from Parsl's task records and the workers.

Each stage or trial submitted to Parsl becomes rows ``(task, stage, state, time,
executor, block, host)`` with the states ``submitted`` (the app was called), ``launched``
(handed to the executor), ``running`` and ``done``/``failed`` (stamped on the worker by
:func:`runners.stages.base.stamped`).  The rows go to the run as ``events/events.csv``;
``bench analytics`` draws throughput and utilization from them
(:mod:`runners.analysis.throughput`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

FIELDS = ("task", "stage", "state", "time", "executor", "block", "host")


def _ts(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None


def task_rows(name: str, fut: Any) -> list[dict[str, Any]]:
    """The state transitions of one submitted task (Parsl AppFuture), as rows."""
    record = getattr(fut, "task_record", None) or {}
    base = {"task": name, "stage": name.split("#")[0],
            "executor": str(record.get("executor", "")), "block": "", "host": ""}
    rows = []
    for state, key in (("submitted", "time_invoked"), ("launched", "try_time_launched")):
        t = _ts(record.get(key))
        if t is not None:
            rows.append({**base, "state": state, "time": t})
    ran: dict[str, Any] = {}
    failed = not fut.done() or fut.exception() is not None
    if not failed:
        ran = getattr(fut.result(), "data", {}).get("_ran", {})
    if ran:
        base.update(block=str(ran["block"]), host=str(ran["host"]))
        rows.append({**base, "state": "running", "time": float(ran["start"])})
        rows.append({**base, "state": "done", "time": float(ran["end"])})
    else:
        t = _ts(record.get("time_returned")) or _ts(record.get("try_time_returned"))
        if t is not None:
            rows.append({**base, "state": "failed" if failed else "done", "time": t})
    for row in rows:
        row.update(block=base["block"], host=base["host"])
    return rows


def write_events(submitted: list[tuple[str, Any]], path: Path) -> Path | None:
    """Write the transitions of every submitted task to a CSV; None when nothing ran."""
    rows = [row for name, fut in submitted for row in task_rows(name, fut)]
    if not rows:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["time"], r["task"])))
    return path


def attempts(submitted: list[tuple[str, Any]]) -> dict[str, tuple[int, list[str]]]:
    """``{task: (attempts, [why each failed attempt failed])}`` of the tasks Parsl tried
    more than once (a lost worker: see parsl_configs/retry.py)."""
    out: dict[str, tuple[int, list[str]]] = {}
    for name, fut in submitted:
        record = getattr(fut, "task_record", None) or {}
        tries = int(record.get("try_id", 0)) + 1
        if tries > 1:
            out[name] = (tries, list(record.get("bench_fail_history", [])))
    return out
