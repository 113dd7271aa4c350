"""An agent's blocks (Parsl's pilot jobs): which are alive, and cancelling those a lost
agent left behind."""

from __future__ import annotations

import logging
from typing import Any

from runners.errors import one_line

log = logging.getLogger("runners.site")


def live_blocks(executor: Any) -> list[str]:
    """The job ids of an executor's blocks that are pending or running (as its status
    poller last saw them; released blocks stay in Parsl's tables, ended)."""
    if executor is None:
        return []
    jobs = getattr(executor, "blocks_to_job_id", {})
    seen: dict[str, Any] = dict(getattr(executor, "status_facade", {}))
    return [str(jobs.get(block, block)) for block, st in seen.items() if not st.terminal]


def cancel_blocks(executor: Any, jobs: list[str], site: str) -> None:
    """Cancel batch jobs through the executor's provider (e.g. ``scancel``): the blocks of
    a lost agent, whose worker pools lost their interchange and would otherwise hold their
    nodes until they notice."""
    provider: Any = getattr(executor, "provider", None)
    if not jobs or provider is None:
        return
    from parsl.jobs.states import JobState, JobStatus

    for job in jobs:    # a provider cancels only jobs it knows
        provider.resources.setdefault(job, {"job_id": job,
                                            "status": JobStatus(JobState.UNKNOWN)})
    try:
        provider.cancel(jobs)
        log.info("site %s: cancelled blocks %s of a lost agent", site, jobs)
    except Exception as exc:        # noqa: BLE001 - they end when their pools notice
        log.warning("site %s: cancelling blocks %s failed: %s", site, jobs, one_line(exc))
