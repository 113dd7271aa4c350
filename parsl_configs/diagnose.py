"""Why did a block die?  The scheduler's own words: its record's ``diagnose`` (e.g. Slurm's
``scontrol``), else the batch job's output."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from parsl_configs.scheduler import Scheduler

#: Scheduler messages that mean "the job hit its walltime".
WALLTIME = [
    re.compile(r"CANCELLED AT \S+ DUE TO TIME LIMIT"),                  # Slurm
    re.compile(r"job killed: walltime \d+ exceeded limit \d+"),         # PBS Pro
    re.compile(r"maximum walltime|exceeded walltime", re.IGNORECASE),   # Cobalt and others
]
PREEMPTED = re.compile(r"DUE TO PREEMPTION|preempted", re.IGNORECASE)


def block_failure(executor: Any, record: Scheduler | None = None) -> tuple[str, str] | None:
    """The failure kind and a one-line reason for a block that died, if the scheduler said.

    Parameters
    ----------
    executor : parsl.executors.HighThroughputExecutor
        An executor with a batch provider (``provider.resources`` holds each job's
        ``job_stdout_path`` / ``job_stderr_path``).
    record : Scheduler, optional
        The executor's scheduler; its ``diagnose`` is asked first.

    Returns
    -------
    (kind, reason) or None
        ``("walltime", ...)`` or ``("scheduler", ...)`` when the scheduler explains it.
    """
    if record is not None and record.diagnose is not None:
        found = record.diagnose(executor)
        if found:
            return found
    provider = getattr(executor, "provider", None)
    for job_id, info in dict(getattr(provider, "resources", {}) or {}).items():
        for key in ("job_stderr_path", "job_stdout_path"):
            path = info.get(key) if isinstance(info, dict) else None
            if not path or not Path(path).is_file():
                continue
            text = Path(path).read_text(errors="replace")[-20000:]
            for pattern in WALLTIME:
                m = pattern.search(text)
                if m:
                    return "walltime", f"batch job {job_id} exceeded its walltime ({m.group(0)})"
            m = PREEMPTED.search(text)
            if m:
                return "scheduler", f"batch job {job_id} was preempted ({m.group(0)})"
    return None
