"""Which failed Parsl tasks are retried: only those whose worker was lost.

A worker killed mid-task (``WorkerLost``), or a whole worker pool gone (``ManagerLost``),
says nothing about the benchmark, so the task is run again, up to ``machine.retries``
times.  A stage that failed by itself (a non-zero exit, a timeout, a bad result line) is
not retried: running it again would hide the failure or double its cost.
"""

from __future__ import annotations

import functools
from typing import Any

from parsl_configs.scheduler import Scheduler
from runners.errors import one_line

#: Exceptions (by class name) that mean the worker, not the task, failed.
LOST = ("WorkerLost", "ManagerLost")
#: The cost of any other failure: more than any retry budget.
NO_RETRY = 1e9


def lost_worker_only(exception: BaseException, task_record: Any,
                     schedulers: dict[str, Scheduler] | None = None) -> float:
    """Parsl ``retry_handler``: 1 for a lost worker, more than any budget otherwise.

    A worker lost because its block died for a reason the scheduler gives (a node lost,
    the walltime) is not retried either: no block would come back to run it (Slurm does
    not requeue a pilot job), and the run must end with that reason.  ``schedulers`` maps
    executor labels to their scheduler records (:func:`apply` binds it).

    Why each try failed is kept in the task record under ``bench_fail_history`` (Parsl
    clears its own ``fail_history`` when it retries).
    """
    why = one_line(exception, 200)
    task_record.setdefault("bench_fail_history", []).append(why)
    if type(exception).__name__ not in LOST:
        return NO_RETRY
    record = (schedulers or {}).get(str(task_record.get("executor")))
    dfk = task_record.get("dfk")
    if record is not None and record.diagnose is not None and dfk is not None:
        found = record.diagnose(dfk.executors.get(task_record.get("executor")))
        if found:
            task_record["bench_fail_history"].append(found[1])
            return NO_RETRY
    return 1.0


def apply(config: Any, retries: int, schedulers: dict[str, Scheduler] | None = None) -> Any:
    """Set a Parsl config's retry budget and :func:`lost_worker_only` (knowing each
    executor's scheduler); return the config."""
    config.retries = int(retries)
    config.retry_handler = functools.partial(lost_worker_only, schedulers=schedulers or {})
    return config
