"""Which failed Parsl tasks are retried: only those whose worker was lost.

A worker killed mid-task (``WorkerLost``), or a whole worker pool gone (``ManagerLost``),
says nothing about the benchmark, so the task is run again, up to ``machine.retries``
times.  A stage that failed by itself (a non-zero exit, a timeout, a bad result line) is
not retried: running it again would hide the failure or double its cost.
"""

from __future__ import annotations

from typing import Any

from runners.errors import one_line

#: Exceptions (by class name) that mean the worker, not the task, failed.
LOST = ("WorkerLost", "ManagerLost")
#: The cost of any other failure: more than any retry budget.
NO_RETRY = 1e9


def lost_worker_only(exception: BaseException, task_record: Any) -> float:
    """Parsl ``retry_handler``: 1 for a lost worker, more than any budget otherwise.

    Why each try failed is kept in the task record under ``bench_fail_history`` (Parsl
    clears its own ``fail_history`` when it retries).
    """
    why = one_line(exception, 200)
    task_record.setdefault("bench_fail_history", []).append(why)
    return 1.0 if type(exception).__name__ in LOST else NO_RETRY


def apply(config: Any, retries: int) -> Any:
    """Set a Parsl config's retry budget and :func:`lost_worker_only`; return the config."""
    config.retries = int(retries)
    config.retry_handler = lost_worker_only
    return config
