"""The sweep behind the Parsl launcher (``hydra/launcher=parsl``): compose every job fast,
then run a bench sweep concurrently (:class:`runners.sweep.sweep_run.SweepRun`), or any
other Hydra app's jobs one by one.  Hydra's contract is kept: each job gets its directory,
``.hydra/`` files, ``hydra.job.num`` and a ``JobReturn``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.config.console import release
from runners.errors import ConfigError, fold_hydra_error
from runners.sweep.compose import Composer
from runners.sweep.hydra_jobs import run_hydra_job
from runners.sweep.jobs import Job, name_points
from runners.sweep.sweep import LogRouter
from runners.sweep.sweep_run import SweepRun

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn

log = logging.getLogger(__name__)


def run_sweep(launcher: Any, job_overrides: Sequence[Sequence[str]],
              initial_job_idx: int) -> list[JobReturn]:
    """Run all jobs of a sweep (see the module docstring); return their JobReturns."""
    from hydra.core.utils import configure_log, setup_globals

    release()        # the composition succeeded: what the sweep prints flows from here on
    setup_globals()
    base = launcher.config
    configure_log(base.hydra.hydra_logging, base.hydra.verbose)
    sweep_dir = Path(str(base.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not job_overrides:
        raise ConfigError("the sweep has no jobs (a swept value list is empty); give at least "
                          "one value, e.g. bench.ranks=1,2")
    is_bench = "bench" in base and "machine" in base
    router = LogRouter(sweep_dir) if is_bench else None
    if router is not None:
        router.install()
    t0 = time.perf_counter()
    composer = Composer(launcher.hydra_context.config_loader, base)
    jobs = []
    for i, ov in enumerate(job_overrides):
        try:
            jobs.append(Job(initial_job_idx + i, list(ov), composer(list(ov), initial_job_idx + i)))
        except Exception as exc:    # Hydra's composition error, for this point
            raise ConfigError(f"sweep point #{initial_job_idx + i} ({' '.join(ov)}): "
                              f"{fold_hydra_error(str(exc))}") from None
    name_points(jobs)
    if router is None:     # any other Hydra app: one by one
        return [run_hydra_job(launcher, job) for job in jobs]
    log.info("composed %d jobs in %.2f s (%d Hydra compositions)", len(jobs),
             time.perf_counter() - t0, len(composer.templates))
    try:
        return SweepRun(launcher, jobs, sweep_dir, router).run()
    finally:
        router.close()
