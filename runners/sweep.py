"""A sweep: all jobs of a Hydra multirun, run concurrently through one Parsl DataFlowKernel,
under one MLflow parent run.

Before anything is submitted every job is composed and checked (an invalid point stops the
sweep unless ``skip_invalid=true``), ``select=random`` draws one job, and jobs whose config
hash already has a FINISHED run are skipped unless ``rerun=true``.  Runs left RUNNING by a
killed driver are ended KILLED.  Then Parsl starts once, with one executor per machine, and
each job's stages run in a thread of their own, at most ``hydra.launcher.concurrency`` jobs
per machine at a time.  Hydra's contract is kept: each job gets its directory, ``.hydra/``
files, ``hydra.job.num`` and a ``JobReturn``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from runners.entry import ConfigError

log = logging.getLogger(__name__)
_ACTIVE: Sweep | None = None
SWEEP_OPTIONS = ("rerun", "skip_invalid", "select", "seed")
NOT_IN_SWEEP_ID = ("tracking.", "hydra.", "run_name", "tags.", "dry_run")


def current_sweep() -> Sweep | None:
    """The sweep whose job is being prepared in this process, if any."""
    return _ACTIVE


@dataclass
class Job:
    """One point of the sweep."""

    num: int
    overrides: list[str]
    config: DictConfig                      # with its ``hydra`` section
    label: str = ""                         # the Parsl executor it runs on
    point: str = ""                         # the overrides that differ between jobs
    state: str = "pending"  # pending|invalid|skipped|running|finished|failed
    run_id: str = ""
    detail: str = ""
    future: Future[Any] | None = field(default=None, repr=False)

    @property
    def task(self) -> DictConfig:
        """The job's config without the ``hydra`` section (what the task function sees)."""
        cfg = self.config.copy()
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def name(self) -> str:
        """The job's point of the sweep (its own overrides), for people."""
        return self.point or "(default)"


def name_points(jobs: list[Job]) -> None:
    """Set each job's ``point``: only the overrides whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for o in job.overrides:
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
    for job in jobs:
        job.point = " ".join(o for o in job.overrides if len(values[o.partition("=")[0]]) > 1)
        if not job.point and len(jobs) == 1:
            job.point = " ".join(o for o in job.overrides
                                 if not o.startswith(NOT_IN_SWEEP_ID))


def sweep_id(overrides: list[str]) -> str:
    """A stable id of a sweep: the hash of its overrides without the sweep's own options,
    the store and the output paths (the same sweep resumed later keeps its id)."""
    kept = sorted(o for o in overrides if o.split("=")[0].lstrip("+~") not in SWEEP_OPTIONS
                  and not o.lstrip("+~").startswith(NOT_IN_SWEEP_ID))
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:12]


def executor_labels(jobs: list[Job]) -> None:
    """Give each job an executor label: the machine's name, one executor per distinct
    machine config (a sweep over ``machine.max_workers`` gets one executor per value)."""
    variants: dict[str, list[str]] = {}
    keys: dict[int, tuple[str, str]] = {}
    for job in jobs:
        cfg = job.config
        fs = cfg.machine.filesystems.get(cfg.fs.name)
        key = json.dumps([OmegaConf.to_container(cfg.machine, resolve=True),
                          list(fs.directives) if fs is not None else []], sort_keys=True)
        name = str(cfg.machine.name)
        variants.setdefault(name, [])
        if key not in variants[name]:
            variants[name].append(key)
        keys[job.num] = (name, key)
    for job in jobs:
        name, key = keys[job.num]
        i = variants[name].index(key)
        job.label = name if len(variants[name]) == 1 else f"{name}-{i + 1}"


def check_points(jobs: list[Job], skip_invalid: bool) -> list[Job]:
    """Validate every job before anything runs; return the valid ones.

    Raises
    ------
    ConfigError
        At the first invalid point, unless ``skip_invalid`` (then they are listed).
    """
    from runners.validate import preflight, validate

    valid = []
    for job in jobs:
        try:
            validate(job.config)
            if not job.config.dry_run:
                preflight(job.config)
            valid.append(job)
        except ConfigError as exc:
            if not skip_invalid:
                raise ConfigError(f"sweep point #{job.num} ({job.name()}): {exc} — nothing was "
                                  "run; fix the sweep or pass skip_invalid=true to skip invalid "
                                  "points") from None
            job.state, job.detail = "invalid", str(exc)
            print(f"skip #{job.num} ({job.name()}): invalid: {exc}", file=sys.stderr)
    return valid


def draw(jobs: list[Job], seed: int | None) -> tuple[Job, int]:
    """One job drawn at random (seeded: the same seed draws the same job); return it and
    the seed used (a fresh one when none was given, so every draw can be repeated)."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return jobs[random.Random(seed).randrange(len(jobs))], seed


@dataclass
class Counts:
    """How many jobs ended each way."""

    total: int = 0
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    invalid: int = 0
    running: int = 0

    def metrics(self) -> dict[str, float]:
        """The counts as parent-run metrics."""
        return {f"jobs_{k}": float(v) for k, v in vars(self).items() if k != "running"}


class Sweep:
    """The jobs of one sweep that run: shared Parsl and tracker, a thread per job.

    The task function of each job (``run_experiment``) calls :meth:`submit` from Hydra's
    ``run_job`` in the main thread; the job's stages then run in a thread, gated by a
    semaphore per executor.
    """

    def __init__(self, jobs: list[Job], dfk: Any, parsl_error: BaseException | None,
                 tracker: Any, parent_id: str, sweep_tag: str, slots: dict[str, int],
                 router: LogRouter) -> None:
        self.jobs = {job.num: job for job in jobs}
        self.dfk, self.parsl_error, self.tracker = dfk, parsl_error, tracker
        self.parent_id, self.sweep_tag = parent_id, sweep_tag
        self.slots = {label: threading.Semaphore(max(1, n)) for label, n in slots.items()}
        self.counts = Counts(total=len(jobs))
        self.lock = threading.Lock()
        self.stopping = False
        self.router = router

    def submit(self, cfg: DictConfig, out_dir: Path) -> Future[Any]:
        """Start the job of the current ``hydra.job.num``; return the future of its summary."""
        from hydra.core.hydra_config import HydraConfig

        job = self.jobs[int(HydraConfig.get().job.num)]
        job.future = Future()
        threading.Thread(target=self._run, args=(job, cfg, out_dir), daemon=True,
                         name=f"job-{job.num}").start()
        return job.future

    def _run(self, job: Job, cfg: DictConfig, out_dir: Path) -> None:
        from runners.experiment import close_run, open_run

        assert job.future is not None
        self.router.add(threading.current_thread().name, out_dir / "run.log")
        with self.slots[job.label]:
            if self.stopping:
                job.future.set_exception(SystemExit(130))
                return
            self._count("running", +1, job, "running")
            try:
                if not cfg.run_name:
                    from runners.experiment import _default_name

                    with open_dict(cfg):
                        cfg.run_name = f"{_default_name(cfg)}#{job.num}"
                job.run_id = open_run(cfg, self.tracker, out_dir, self.parent_id,
                                      {"sweep.id": self.sweep_tag, "sweep.job": str(job.num),
                                       "sweep.point": job.point})
                summary = close_run(cfg, self.dfk, self.tracker, job.run_id, out_dir,
                                    self.parsl_error, job.label, quiet=True)
                job.future.set_result(summary)
                self._count("finished", +1, job, "finished")
            except BaseException as exc:  # noqa: BLE001 - any failure ends this job only
                job.detail = str(getattr(exc, "reason", "") or f"{type(exc).__name__}: {exc}")
                job.future.set_exception(exc)
                self._count("failed", +1, job, "failed")

    def _count(self, what: str, delta: int, job: Job, state: str) -> None:
        with self.lock:
            setattr(self.counts, what, getattr(self.counts, what) + delta)
            if state != "running":
                self.counts.running -= 1
            job.state = state
            done = self.counts.finished + self.counts.failed
        if state != "running" and not self.stopping:
            self.tracker.log_metrics(self.parent_id, self.counts.metrics(), step=done)


def _run_hydra_job(launcher: Any, job: Job) -> Any:
    """Hydra's ``run_job`` (the job's directory, ``.hydra/`` files and log file), then
    Hydra's own logging again, as its basic launcher does.  Parsl's run log survives the
    job's log set-up (which would drop the ``parsl`` logger's handlers)."""
    from hydra.core.utils import configure_log, run_job

    parsl_logger = logging.getLogger("parsl")
    parsl_handlers = list(parsl_logger.handlers)
    try:
        return run_job(hydra_context=launcher.hydra_context,
                       task_function=launcher.task_function, config=job.config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    finally:
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        if _ACTIVE is not None:
            parsl_logger.handlers, parsl_logger.propagate = parsl_handlers, False
            _ACTIVE.router.install()


def _job_return(job: Job) -> Any:
    """A JobReturn for a job that did not run (skipped or invalid)."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=list(job.overrides), cfg=job.task, hydra_cfg=job.config,
                    working_dir=os.getcwd(), task_name=str(job.config.hydra.job.name))
    ret.status = JobStatus.COMPLETED
    ret.return_value = {job.state: job.detail}
    return ret


class LogRouter(logging.Handler):
    """Writes each job thread's log records to that job's ``run.log``, the rest to
    ``<sweep dir>/sweep.log`` (Hydra's per-job logging is global, the jobs are threads)."""

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__(logging.INFO)
        self.fmt = logging.Formatter("[%(asctime)s][%(threadName)s][%(name)s] %(message)s")
        self.files: dict[str, logging.Handler] = {}
        self.default = self._file(sweep_dir / "sweep.log")

    def _file(self, path: Path) -> logging.Handler:
        handler = logging.FileHandler(path)
        handler.setFormatter(self.fmt)
        return handler

    def add(self, thread: str, path: Path) -> None:
        """Send ``thread``'s records to ``path`` from now on."""
        self.files[thread] = self._file(path)

    def emit(self, record: logging.LogRecord) -> None:
        self.files.get(record.threadName or "", self.default).emit(record)

    def install(self) -> None:
        """(Re)attach to the ``runners`` logger (Hydra's per-job log set-up replaces it)."""
        logger = logging.getLogger("runners")
        logger.handlers, logger.propagate = [self], False
        logger.setLevel(logging.INFO)

    def close(self) -> None:
        for handler in [self.default, *self.files.values()]:
            handler.close()
        super().close()


def run_sweep(launcher: Any, job_overrides: Any, initial_job_idx: int) -> list[Any]:
    """Run all jobs of a sweep (see the module docstring); return their JobReturns."""
    from hydra.core.utils import configure_log, setup_globals

    setup_globals()
    base = launcher.config
    configure_log(base.hydra.hydra_logging, base.hydra.verbose)
    sweep_dir = Path(str(base.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not job_overrides:
        raise ConfigError("the sweep has no jobs (a swept value list is empty); give at least "
                          "one value, e.g. bench.ranks=1,2")
    from runners.compose import Composer

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
            from runners.entry import fold_hydra_error

            raise ConfigError(f"sweep point #{initial_job_idx + i} ({' '.join(ov)}): "
                              f"{fold_hydra_error(str(exc))}") from None
    name_points(jobs)
    if router is None:     # any other Hydra app: one by one
        return [_run_hydra_job(launcher, job) for job in jobs]
    log.info("composed %d jobs in %.2f s (%d Hydra compositions)", len(jobs),
             time.perf_counter() - t0, len(composer.templates))
    from runners.sweep_run import SweepRun

    try:
        return SweepRun(launcher, jobs, sweep_dir, router).run()
    finally:
        router.close()
