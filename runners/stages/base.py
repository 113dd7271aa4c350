"""What every stage returns or raises, and the helpers all stages share.

Stages are plain functions run on a Parsl worker (:mod:`runners.run.pipeline` submits
them); each returns a :class:`StageResult` and raises :class:`StageError` with a failure
kind.  Nothing in this package touches MLflow.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.stages.measure import Measured, cause, tail

#: The environment's package list (its marker file is :data:`MARKER`).
FREEZE = "bench-freeze.txt"


class StageError(RuntimeError):
    """A stage that failed, with its cause.

    Parameters
    ----------
    stage : str
        The stage name (env, stage, warmup, bench, ...).
    kind : str
        ``sanity``, ``timeout``, ``error``, ``parse``, ``scheduler`` or ``worker_lost``.
    message : str
        One line saying what went wrong.
    logs : list of str
        Log files to attach to the run.
    """

    def __init__(self, stage: str, kind: str, message: str, logs: list[str] | None = None):
        super().__init__(f"{stage} failed ({kind}): {message}")
        self.stage, self.kind, self.message, self.logs = stage, kind, message, logs or []

    def __reduce__(self) -> tuple[Any, ...]:
        return (StageError, (self.stage, self.kind, self.message, self.logs))


@dataclass
class StageResult:
    """What a stage produced: its time, metrics, tags, log files and data for the next stage."""

    stage: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def where(job_id_vars: tuple[str, ...] = ()) -> dict[str, str]:
    """Tags naming where a stage ran: the worker's host and, in a batch job, the job's id
    (from the first of ``job_id_vars`` that is set, e.g. ``SLURM_JOB_ID``)."""
    tags = {"worker.host": socket.gethostname()}
    for var in job_id_vars:
        if os.environ.get(var):
            tags["scheduler.job_id"] = os.environ[var]
            break
    return tags


def stamped(fn: Callable[..., StageResult], job_id_vars: tuple[str, ...],
            *args: Any) -> StageResult:
    """Run a stage function and stamp its result: where it ran (tags ``worker.host`` and
    ``scheduler.job_id``, see :func:`where`) and when, on which host and in which Parsl
    block (``data["_ran"]``, read back by :mod:`runners.run.task_events`).

    Parsl resolves the futures among ``args`` before this runs on the worker.  A failing
    stage's times come from the driver's task record instead.
    """
    t0 = time.time()
    result = fn(*args)
    result.tags = {**where(job_id_vars), **result.tags}
    result.data["_ran"] = {"start": t0, "end": time.time(), "host": socket.gethostname(),
                           "block": os.environ.get("PARSL_WORKER_BLOCK_ID", "")}
    return result


def log_paths(log_dir: str, name: str) -> tuple[Path, Path]:
    """The stdout and stderr log files of a command ``name`` in ``log_dir`` (made)."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return Path(log_dir) / f"{name}.stdout.log", Path(log_dir) / f"{name}.stderr.log"


def check_exit(m: Measured, stage: str, what: str) -> None:
    """Raise StageError ``timeout`` or ``error`` (with the logs) unless ``m`` exited 0."""
    if m.timed_out:
        raise StageError(stage, "timeout", f"{what} exceeded its timeout after {m.wall_s:.0f} s",
                         [m.stdout_path, m.stderr_path])
    if m.returncode != 0:
        raise StageError(stage, "error", f"{what} exited {m.returncode}: "
                         f"{cause(m.stderr_path) or tail(m.stdout_path)}",
                         [m.stdout_path, m.stderr_path])
