"""A running sweep: its jobs share one Parsl DataFlowKernel and one tracker; each job's
stages run in a thread of its own, at most ``slots[label]`` jobs per executor at a time,
and its log records go to its own ``run.log``."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from runners.errors import RunFailed
from runners.run.lifecycle import close_run, default_run_name, open_run
from runners.sweep.jobs import Counts, Job
from runners.tracking.tracker import Tracker


class Sweep:
    """The jobs of one sweep that run: shared Parsl and tracker, a thread per job.

    :meth:`task` is each job's task function: Hydra's ``run_job`` calls it in the main
    thread (after making the job's directory and files), and it hands the job to a thread,
    gated by a semaphore per executor.
    """

    def __init__(self, jobs: list[Job], dfk: Any, parsl_error: BaseException | None,
                 tracker: Tracker, parent_id: str, sweep_tag: str, slots: dict[str, int],
                 router: LogRouter) -> None:
        self.jobs = {job.num: job for job in jobs}
        self.dfk, self.parsl_error, self.tracker = dfk, parsl_error, tracker
        self.parent_id, self.sweep_tag = parent_id, sweep_tag
        self.slots = {label: threading.Semaphore(max(1, n)) for label, n in slots.items()}
        self.counts = Counts(total=len(jobs))
        self.lock = threading.Lock()
        self.stopping = False
        self.router = router

    def task(self, cfg: DictConfig) -> Future[Any]:
        """Start the job of the current ``hydra.job.num``; return the future of its summary."""
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        return self.start(self.jobs[int(hydra.job.num)], cfg, Path(hydra.runtime.output_dir))

    def start(self, job: Job, cfg: DictConfig, out_dir: Path) -> Future[Any]:
        """Open the job's ``run.log`` and start its thread; return the future of its summary.

        The log file is opened here, in the main thread: Hydra's log set-up for the next job
        (also in the main thread) flushes every handler there is, and would meet one that a
        job thread is half-way through making (``'FileHandler' object has no attribute
        'stream'``).
        """
        job.future = Future()
        thread = f"job-{job.num}"
        self.router.add(thread, out_dir / "run.log")
        threading.Thread(target=self._run, args=(job, cfg, out_dir), daemon=True,
                         name=thread).start()
        return job.future

    def _run(self, job: Job, cfg: DictConfig, out_dir: Path) -> None:
        assert job.future is not None and job.kind is not None
        kind = type(job.kind)(cfg)
        with self.slots[job.label]:
            if self.stopping:
                job.future.set_exception(RunFailed(130, "the sweep was interrupted"))
                return
            self._count("running", +1, job, "running")
            try:
                if not cfg.run_name:
                    with open_dict(cfg):
                        cfg.run_name = f"{default_run_name(cfg)}#{job.num}"
                job.run_id = open_run(cfg, kind, self.tracker, out_dir, self.parent_id,
                                      {"sweep.id": self.sweep_tag, "sweep.job": str(job.num),
                                       "sweep.point": job.point})
                summary = close_run(cfg, kind, self.dfk, self.tracker, job.run_id, out_dir,
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
        """Write a record to its thread's log file (``handle``: under that file's lock)."""
        self.files.get(record.threadName or "", self.default).handle(record)

    def install(self) -> None:
        """(Re)attach to the ``runners`` logger (Hydra's per-job log set-up replaces it)."""
        logger = logging.getLogger("runners")
        logger.handlers, logger.propagate = [self], False
        logger.setLevel(logging.INFO)

    def close(self) -> None:
        """Close every log file."""
        for handler in [self.default, *self.files.values()]:
            handler.close()
        super().close()
