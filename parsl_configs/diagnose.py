"""Why did a block die?  Read the scheduler's own words from the batch job's output."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

#: Scheduler messages that mean "the job hit its walltime".
WALLTIME = [
    re.compile(r"CANCELLED AT \S+ DUE TO TIME LIMIT"),                  # Slurm
    re.compile(r"job killed: walltime \d+ exceeded limit \d+"),         # PBS Pro
    re.compile(r"maximum walltime|exceeded walltime", re.IGNORECASE),   # Cobalt and others
]
PREEMPTED = re.compile(r"DUE TO PREEMPTION|preempted", re.IGNORECASE)


def block_failure(executor: Any) -> tuple[str, str] | None:
    """The failure kind and a one-line reason for a block that died, if the scheduler said.

    Parameters
    ----------
    executor : parsl.executors.HighThroughputExecutor
        An executor with a batch provider (``provider.resources`` holds each job's
        ``job_stdout_path`` / ``job_stderr_path``).

    Returns
    -------
    (kind, reason) or None
        ``("walltime", ...)`` or ``("scheduler", ...)`` when a job's output explains it.
    """
    provider = getattr(executor, "provider", None)
    if getattr(provider, "label", "") == "slurm":
        for job_id in list(getattr(provider, "resources", {}) or {}):
            found = slurm_job_verdict(str(job_id))
            if found:
                return found
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


def past_end(scontrol_line: str) -> bool:
    """Whether a running job is past its ``EndTime`` (Slurm prints local time)."""
    import datetime as dt

    m = re.search(r"JobState=(RUNNING|COMPLETING)\b.*?EndTime=(\S+)", scontrol_line)
    if m is None:
        m = re.search(r"EndTime=(\S+).*?JobState=(RUNNING|COMPLETING)\b", scontrol_line)
        end = m.group(1) if m else ""
    else:
        end = m.group(2)
    try:
        return bool(end) and dt.datetime.fromisoformat(end) <= dt.datetime.now()
    except ValueError:       # "Unknown", "NONE"
        return False


def slurm_job_verdict(job_id: str, wait_s: float = 10.0) -> tuple[str, str] | None:
    """Ask Slurm how a job ended (``scontrol show job``), waiting while it is completing.

    Slurm enforces time limits on a periodic check: past its ``EndTime`` a job refuses
    new steps while ``scontrol`` may still say RUNNING for a while, then shows
    ``JobState=COMPLETING Reason=TimeLimit``, then ``JobState=TIMEOUT``; all of these count.

    Returns
    -------
    (kind, reason) or None
        ``walltime`` for JobState=TIMEOUT, ``scheduler`` for PREEMPTED / NODE_FAIL /
        BOOT_FAIL / DEADLINE; None while running, when it ended otherwise, or when Slurm
        no longer knows the job.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                                 text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        state = re.search(r"JobState=(\S+)", out)
        if state is None:
            return None
        if state.group(1) not in ("COMPLETING", "RUNNING") or time.monotonic() > deadline:
            break
        if re.search(r"Reason=TimeLimit\b", out) or past_end(out):
            break       # timed out, though Slurm may not have processed it yet
        time.sleep(0.5)
    if state.group(1) == "TIMEOUT" or re.search(r"Reason=TimeLimit\b", out) or past_end(out):
        said = " ".join(re.findall(r"(?:JobState|Reason|TimeLimit|EndTime)=\S+", out))
        return "walltime", f"batch job {job_id} exceeded its walltime (Slurm: {said})"
    if state.group(1) in ("PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"):
        return "scheduler", f"batch job {job_id} ended {state.group(1)} (Slurm)"
    return None
