"""One experiment: validate → Parsl → open the MLflow run → the kind's stages → summary →
close the run.  What ``python run.py`` (without ``-m``) does."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil
from omegaconf import DictConfig

from runners.config.validate import preflight, validate
from runners.run.dfk import start as dfk_start
from runners.run.dfk import stop as dfk_stop
from runners.run.lifecycle import (
    close_run,
    experiment_name,
    open_run,
    open_tracker,
    sigterm_to_interrupt,
)
from runners.run.reap import mark_children, parsl_pids, reap_stale

log = logging.getLogger(__name__)


def output_dir() -> Path:
    """Hydra's output directory of the running job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment end to end and record it; return a summary dict.

    Raises
    ------
    ConfigError
        Bad input found before the run was opened (exit code 2 via the entry wrapper).
    SystemExit
        2 when a stage's sanity check failed (the run is FAILED), 1 on other failures,
        130 on interrupt (the run is KILLED).
    """
    kind = validate(cfg)
    log.info("config validated, %.2f s after process start",
             time.time() - psutil.Process().create_time())
    out_dir = output_dir()
    if cfg.dry_run:
        from runners.run.dryrun import print_plan

        print_plan(cfg, kind, out_dir)
        return {"dry_run": True}
    if cfg.site.name:       # queued for the site's agent (runners/site/)
        from runners.site.submit import submit

        return submit(cfg, kind, out_dir)
    os.environ.update({str(k): str(v) for k, v in cfg.machine.env.items()})
    preflight(cfg)
    sigterm_to_interrupt()
    mark_children()
    dfk, parsl_error = None, None
    if not kind.own_parsl:
        try:
            import parsl_configs

            dfk = dfk_start(parsl_configs.build(cfg.machine, str(out_dir / "runinfo"),
                                                cfg.fs.name))
        except Exception as exc:
            parsl_error = exc
    log.info("parsl started")
    # mlflow imports now, while Parsl's worker processes boot; imported before the DFK it
    # slowed the interchange's start (0.8 s per run on 2 cores, benchmarks/results/overhead.md)
    try:
        tracker, experiment_id = open_tracker(cfg)
        reap_stale(tracker, [experiment_name(cfg)], "a run of the same experiment")
        run_id = open_run(cfg, kind, tracker, out_dir,
                          extra_tags={"driver.parsl_pids": parsl_pids(dfk)} if dfk else None)
        summary = close_run(cfg, kind, dfk, tracker, run_id, out_dir, parsl_error)
    finally:
        if dfk is not None:
            dfk_stop(dfk)
        log.info("parsl stopped")
    from runners.run.summary import print_summary

    print_summary(cfg, summary, tracker, run_id, experiment_id)
    return summary
