"""Hydra's side of a job: its directory and files (``run_job``), and the ``JobReturn`` of a
job that did not run."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runners.sweep.jobs import Job
from runners.sweep.sweep import LogRouter

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn


def run_hydra_job(launcher: Any, job: Job, task: Callable[[Any], Any] | None = None,
                  router: LogRouter | None = None) -> JobReturn:
    """Hydra's ``run_job`` (the job's directory, ``.hydra/`` files and log file) with
    ``task`` (default: the launcher's task function), then Hydra's own logging again, as
    its basic launcher does.  With a ``router`` (a running sweep), Parsl's run log and the
    router survive the job's log set-up (which replaces the loggers' handlers)."""
    from hydra.core.utils import configure_log, run_job

    parsl_logger = logging.getLogger("parsl")
    parsl_handlers = list(parsl_logger.handlers)
    try:
        return run_job(hydra_context=launcher.hydra_context,
                       task_function=task or launcher.task_function, config=job.config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    finally:
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        if router is not None:
            parsl_logger.handlers, parsl_logger.propagate = parsl_handlers, False
            router.install()


def job_return(job: Job) -> JobReturn:
    """A JobReturn for a job that did not run (skipped or invalid)."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=list(job.overrides), cfg=job.task, hydra_cfg=job.config,
                    working_dir=os.getcwd(), task_name=str(job.config.hydra.job.name))
    ret.status = JobStatus.COMPLETED
    ret.return_value = {job.state: job.detail}
    return ret
