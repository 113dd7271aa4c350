"""A sweep queued for a site (``python run.py -m … site=NAME``): its jobs are SCHEDULED
children of a SCHEDULED parent run, and whichever agent ends the last job closes the
parent, as a direct sweep closes its own."""

from __future__ import annotations

import logging

from runners.errors import one_line
from runners.tracking.queue import brief, child_statuses
from runners.tracking.tracker import Tracker

log = logging.getLogger("runners.site")


def close_parent(tracker: Tracker, run_id: str, site: str, tags: dict[str, str],
                 experiment_id: str) -> None:
    """End a queued sweep's parent run once none of its jobs waits or runs any more.

    Parameters
    ----------
    tracker : Tracker
        The store.
    run_id, tags, experiment_id : str, dict, str
        The job that just ended (its tags as it was queued) and its experiment.
    site : str
        The agent's site (for its log).
    """
    parent_id = tags.get("mlflow.parentRunId")
    if not parent_id or tracker.offline_reason is not None:
        return          # offline: `bench sync` uploads the job; a later job closes the parent
    try:
        parent = brief(tracker.online, parent_id)
        if parent.status != "SCHEDULED" or "sweep.site" not in parent.tags:
            return
        # one job still waiting or running is enough to know (cheap: the first found)
        if child_statuses(tracker.online, experiment_id, parent_id, ("SCHEDULED", "RUNNING"),
                          limit=1):
            return
        statuses = child_statuses(tracker.online, experiment_id, parent_id)
        if len(statuses) < int(parent.tags.get("sweep.to_run", "0")):
            return      # the submitter is still queueing the sweep's jobs
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
