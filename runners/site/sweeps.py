"""A sweep queued for a site (``python run.py -m … site=NAME``): its jobs are SCHEDULED
children of a SCHEDULED parent run, and whichever agent ends the last job closes the
parent, as a direct sweep closes its own."""

from __future__ import annotations

import logging

from runners.errors import one_line
from runners.tracking.queue import child_statuses, get_run
from runners.tracking.tracker import Tracker

log = logging.getLogger("runners.site")


def close_parent(tracker: Tracker, run_id: str, site: str) -> None:
    """End a queued sweep's parent run once none of its jobs waits or runs any more."""
    if tracker.offline_reason is not None:
        return          # `bench sync` uploads the job; a later job closes the parent
    try:
        run = get_run(tracker.online, run_id)
        parent_id = run.data.tags.get("mlflow.parentRunId")
        if not parent_id:
            return
        parent = get_run(tracker.online, parent_id)
        if parent.info.status != "SCHEDULED" or "sweep.site" not in parent.data.tags:
            return
        statuses = child_statuses(tracker.online, str(run.info.experiment_id), parent_id)
        if any(s in ("SCHEDULED", "RUNNING") for s in statuses):
            return
        failed = sum(s != "FINISHED" for s in statuses)
        tracker.log_metrics(parent_id, {"jobs_total": len(statuses),
                                        "jobs_finished": len(statuses) - failed,
                                        "jobs_failed": failed})
        if failed:
            tracker.fail_run(parent_id, "sweep", "jobs_failed",
                             f"{failed} of {len(statuses)} jobs failed")
        else:
            tracker.end_run(parent_id, "FINISHED")
    except Exception as exc:        # noqa: BLE001 - the next job's end tries again
        log.warning("site %s: closing the sweep of run %s: %s", site, run_id,
                    one_line(exc))
