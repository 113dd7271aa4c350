"""The life of one sweep: check → draw → resume → Parsl → parent run → jobs → summary."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from runners.errors import ConfigError, RunFailed
from runners.run.dfk import start as dfk_start
from runners.run.dfk import stop as dfk_stop
from runners.run.lifecycle import (
    config_hash,
    experiment_name,
    git_info,
    open_tracker,
    sigterm_to_interrupt,
)
from runners.run.progress import Progress
from runners.run.reap import mark_children, parsl_pids, reap_stale
from runners.sweep.hydra_jobs import job_return, run_hydra_job
from runners.sweep.jobs import Job, check_points, draw, executor_labels, sweep_id
from runners.sweep.sweep import LogRouter, Sweep
from runners.tracking.driver import driver_tags

log = logging.getLogger(__name__)


class SweepRun:
    """Runs the jobs of a bench sweep (see :mod:`runners.sweep.launch`).

    Parameters
    ----------
    launcher : ParslLauncher
        Hydra's launcher (config, hydra context, task function, concurrency).
    jobs : list of Job
        Every composed job of the sweep.
    sweep_dir : Path
        Hydra's sweep directory.
    router : LogRouter
        Where the runners' log records go (per job).
    """

    def __init__(self, launcher: Any, jobs: list[Job], sweep_dir: Path,
                 router: LogRouter) -> None:
        self.launcher, self.jobs, self.sweep_dir, self.router = launcher, jobs, sweep_dir, router
        self.base = launcher.config
        self.tags: dict[str, str] = {}
        self.overrides = [str(o) for o in self.base.hydra.overrides.task]
        self.sweep_tag = sweep_id(self.overrides)

    def run(self) -> list[Any]:
        """Run the sweep; return one JobReturn per job, in order."""
        base = self.base
        t0 = time.perf_counter()
        valid = check_points(self.jobs, bool(base.skip_invalid))
        log.info("checked %d jobs in %.2f s", len(self.jobs), time.perf_counter() - t0)
        if not valid:
            raise ConfigError("every point of the sweep is invalid; nothing was run")
        if any(job.config.dry_run for job in valid):
            return [run_hydra_job(self.launcher, job) for job in valid]
        if len({str(job.config.tracking.uri) for job in valid}) > 1:
            raise ConfigError("a sweep records into one MLflow store; do not sweep tracking")
        select = str(base.select)
        if select not in ("all", "random"):
            raise ConfigError(f"select={select!r} is not valid; use select=all or select=random")
        if select == "random":
            chosen, seed = draw(valid, base.seed)
            for job in valid:
                if job is not chosen:
                    job.state = "not drawn"
            valid = [chosen]
            self.tags.update({"sweep.select": "random", "sweep.seed": str(seed),
                              "sweep.draw": f"#{chosen.num} of {len(self.jobs)}: {chosen.name()}"})
            print(f"select=random seed={seed}: drew #{chosen.num} of {len(self.jobs)} "
                  f"({chosen.name() or 'the default job'})", file=sys.stderr)
        t0 = time.perf_counter()
        tracker, _ = open_tracker(valid[0].config)
        self.tracker = tracker
        log.info("store opened in %.2f s", time.perf_counter() - t0)
        t0 = time.perf_counter()
        to_run = self._resume(valid, rerun=bool(base.rerun) or select == "random")
        log.info("resume: %d of %d jobs to run, looked up in %.2f s", len(to_run), len(valid),
                 time.perf_counter() - t0)
        if base.site.name:
            return self._queue(to_run)
        return self._launch(to_run)

    def _queue(self, to_run: list[Job]) -> list[Any]:
        """``site=NAME``: queue every job as a SCHEDULED child of a SCHEDULED parent run,
        for the site's agents (the last job to end closes the parent)."""
        from concurrent.futures import Future

        from runners.run.lifecycle import open_run
        from runners.site.submit import check, queue_tags
        from runners.tracking.queue import QUEUED, set_status

        site = str(self.base.site.name)
        for job in to_run:
            check(job.config)
        self.tags["sweep.site"] = site
        parent_id = self._open_parent(len(to_run))
        if to_run:      # else nothing is queued: the parent ends now, as a direct sweep's
            set_status(self.tracker.online, parent_id, QUEUED)
        else:
            self.tracker.end_run(parent_id, "FINISHED")
        for job in to_run:
            assert job.kind is not None
            out = self.sweep_dir / str(job.num)
            (out / ".hydra").mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(job.overrides), out / ".hydra" / "overrides.yaml")
            job.run_id = open_run(job.task, job.kind, self.tracker, out, parent_id,
                                  queue_tags(job.task), queued=True)
            job.state, job.detail = "queued", f"for site={site}"
            job.future = Future()
            job.future.set_result({"queued": job.run_id, "site": site})
        print(_table(self.jobs))
        if to_run:
            print(f"sweep {self.sweep_tag}: {len(to_run)} job(s) queued for site={site} under "
                  f"parent run {parent_id} (SCHEDULED until its last job ends); watch them "
                  f"with `bench site queue` and `bench site status {site}`")
        else:
            print(f"sweep {self.sweep_tag}: nothing to queue [parent run {parent_id} FINISHED]")
        return self._returns({})

    def _resume(self, valid: list[Job], rerun: bool) -> list[Job]:
        """Reap stale runs; skip jobs whose config already has a FINISHED run."""
        names = [experiment_name(job.config) for job in valid]
        for run_id in reap_stale(self.tracker, names, f"sweep {self.sweep_tag}"):
            print(f"run {run_id} was left RUNNING by a killed driver: marked KILLED",
                  file=sys.stderr)
        if rerun:
            return valid
        to_run = []
        for job in valid:
            assert job.kind is not None
            h = config_hash(OmegaConf.to_container(job.task, resolve=True),  # type: ignore[arg-type]
                            job.kind)
            found = self.tracker.finished_run(experiment_name(job.config), h)
            if found:
                job.state, job.run_id = "skipped", found
                job.detail = f"run {found} FINISHED with this config"
            else:
                to_run.append(job)
        skipped = [j for j in valid if j.state == "skipped"]
        if skipped:
            print(f"skipping {len(skipped)} of {len(valid)} jobs that already FINISHED in the "
                  "store (rerun=true runs them again):", file=sys.stderr)
            for job in skipped:
                print(f"  #{job.num} {job.name()}: run {job.run_id}", file=sys.stderr)
        return to_run

    def _start_parsl(self, to_run: list[Job]) -> tuple[Any, BaseException | None]:
        for job in to_run:
            os.environ.update({str(k): str(v) for k, v in job.config.machine.env.items()})
        mark_children()
        targets: dict[str, tuple[str, Any, str]] = {}
        for job in to_run:
            if job.kind is not None and not job.kind.own_parsl:   # else it starts its own
                targets.setdefault(job.label, (job.label, job.config.machine,
                                               str(job.config.fs.name)))
        if not targets:
            return None, None
        try:
            import parsl_configs

            config = parsl_configs.build_many(list(targets.values()),
                                              str(self.sweep_dir / "runinfo"))
            return dfk_start(config), None
        except Exception as exc:
            return None, exc

    def _open_parent(self, n_run: int) -> str:
        first = self.jobs[0].config
        for job in self.jobs:
            if job.state in ("pending", "skipped"):
                first = job.config
                break
        bench = str(first.bench.name)
        tags = {"sweep.id": self.sweep_tag, "sweep.dir": str(self.sweep_dir),
                "sweep.jobs": str(len(self.jobs)), "sweep.to_run": str(n_run),
                "sweep.launcher": "parsl", "bench": bench, **driver_tags(),
                **git_info(str(first.project_root)), **self.tags}
        params = {"sweep.overrides": " ".join(self.overrides) or "(none)"}
        for o in self.overrides:     # one param per swept key: sweep.bench.ranks = "1,2,4"
            key, _, value = o.lstrip("+~").partition("=")
            params[f"sweep.{re.sub(r'[^A-Za-z0-9_./: -]', '_', key)}"] = value
        name = f"sweep-{bench}-{len(self.jobs)}jobs"
        return str(self.tracker.start_run(experiment_name(first), name, params, tags))

    def _launch(self, to_run: list[Job]) -> list[Any]:
        executor_labels(to_run)
        parent_id = self._open_parent(len(to_run))
        concurrency = int(self.launcher.concurrency)
        slots = {job.label: concurrency or int(job.config.machine.max_workers) for job in to_run}
        router = self.router
        sweep = Sweep(to_run, None, None, self.tracker, parent_id, self.sweep_tag, slots,
                      router)
        counts = sweep.counts
        counts.total = len(self.jobs)
        counts.skipped = sum(j.state == "skipped" for j in self.jobs)
        counts.invalid = sum(j.state == "invalid" for j in self.jobs)
        sigterm_to_interrupt()
        returns: dict[int, Any] = {}
        t0 = time.monotonic()
        try:
            logging.getLogger("parsl").propagate = False    # Parsl logs to its runinfo/
            if to_run:
                sweep.dfk, sweep.parsl_error = self._start_parsl(to_run)
            if sweep.dfk is not None:
                self.tracker.set_tags(parent_id, {"driver.parsl_pids": parsl_pids(sweep.dfk)})
            log.info("parsl started in %.2f s", time.monotonic() - t0)
            router.install()
            bar = _bar(len(to_run), sweep, slots)
            t1 = time.monotonic()
            for job in to_run:
                returns[job.num] = self._start(job, sweep)
                bar.redraw()
            log.info("%d jobs handed to Parsl in %.2f s", len(to_run), time.monotonic() - t1)
            pending = [j.future for j in to_run if j.future is not None]
            while pending:
                _, left = wait_futures(pending, timeout=0.25, return_when="FIRST_COMPLETED")
                pending = list(left)
                bar.redraw()
            bar.close()
            log.info("all jobs done %.2f s after the first was handed over",
                     time.monotonic() - t1)
        except KeyboardInterrupt:
            self._interrupted(sweep, to_run)
            raise RunFailed(130, "the sweep was interrupted") from None
        except BaseException as exc:
            sweep.stopping = True
            self.tracker.fail_run(parent_id, "sweep", "error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if sweep.dfk is not None:
                dfk_stop(sweep.dfk)
        self._close_parent(sweep, time.monotonic() - t0)
        return self._returns(returns)

    def _start(self, job: Job, sweep: Sweep) -> Any:
        """Hydra's run_job for one job; its task function hands the job to the sweep."""
        from concurrent.futures import Future

        from hydra.core.utils import JobReturn, JobStatus

        error: BaseException | None = None
        ret: JobReturn | None = None
        try:
            ret = run_hydra_job(self.launcher, job, sweep.task, self.router)
        except BaseException as exc:  # noqa: BLE001 - e.g. a config error of this job only
            error = exc
        else:
            if job.future is not None:       # handed to the sweep: it runs in its thread
                return ret
            # Hydra keeps a failed job's exception here (its accessor also prints it)
            error = ret._return_value if ret.status == JobStatus.FAILED else None
        job.future = Future()
        if error is None:      # the task ran in place (e.g. not a bench task)
            job.state = "finished"
            job.future.set_result(ret.return_value if ret is not None else None)
        else:
            job.state, job.detail = "failed", f"{type(error).__name__}: {error}"
            job.future.set_exception(error)
        return ret

    def _interrupted(self, sweep: Sweep, to_run: list[Job]) -> None:
        sweep.stopping = True
        for job in to_run:
            if job.state == "running" and job.run_id:
                self.tracker.fail_run(job.run_id, "interrupted", "interrupted",
                                      "the sweep was interrupted", status="KILLED")
        self.tracker.fail_run(sweep.parent_id, "interrupted", "interrupted",
                              "the sweep was interrupted", status="KILLED")
        print(f"interrupted [sweep run {sweep.parent_id} KILLED]", file=sys.stderr)

    def _close_parent(self, sweep: Sweep, seconds: float) -> None:
        counts, parent = sweep.counts, sweep.parent_id
        self.tracker.log_metrics(parent, {**counts.metrics(), "sweep_s": seconds},
                                 step=counts.finished + counts.failed)
        if counts.failed:
            self.tracker.fail_run(parent, "sweep", "jobs_failed",
                                  f"{counts.failed} of {counts.total} jobs failed")
        else:
            self.tracker.end_run(parent, "FINISHED")
        print(_table(self.jobs))
        status = "FAILED" if counts.failed else "FINISHED"
        print(f"sweep {self.sweep_tag}: {counts.finished} finished, {counts.failed} failed, "
              f"{counts.skipped} skipped, {counts.invalid} invalid in {seconds:.1f} s  "
              f"[parent run {parent} {status}]")
        if self.tracker.offline_reason and self.tracker.spool is not None:
            print(f"Recorded in the spool {self.tracker.spool.root} (the tracking server could "
                  "not be reached); upload it with:\n  bench sync")
        else:
            print(f"Open the MLflow UI on this store with:\n  {self.tracker.ui_command()}")

    def _returns(self, returns: dict[int, Any]) -> list[Any]:
        from hydra.core.utils import JobStatus

        out = []
        for job in self.jobs:
            if job.state in ("skipped", "invalid", "not drawn"):
                out.append(job_return(job))
                continue
            ret = returns.get(job.num)
            if ret is None:
                ret = job_return(job)
            assert job.future is not None
            exc = job.future.exception()
            if exc is not None:
                ret.status, ret.return_value = JobStatus.FAILED, exc
            else:
                ret.status, ret.return_value = JobStatus.COMPLETED, job.future.result()
            out.append(ret)
        return out


class _bar:
    """The sweep's progress line: done / failed / running, elapsed and ETA."""

    def __init__(self, total: int, sweep: Sweep, slots: dict[str, int]) -> None:
        self.sweep = sweep
        self.progress = Progress(total, "jobs")
        self.machines = ", ".join(f"{k} x{v}" for k, v in slots.items())

    def redraw(self) -> None:
        c = self.sweep.counts
        self.progress.update(done=c.finished + c.failed,
                             note=f"ok {c.finished}  failed {c.failed}  running {c.running}"
                                  f"  [{self.machines}]")

    def close(self) -> None:
        self.progress.close()


def _table(jobs: list[Job]) -> str:
    """One line per job: number, overrides, state, run id and detail."""
    width = max([len(j.name()) for j in jobs] + [9])
    lines = [f"{'#':>4}  {'overrides':<{width}}  {'state':<9}  {'run':<32}  detail"]
    for j in jobs:
        lines.append(f"{j.num:>4}  {j.name() or '(default)':<{width}}  {j.state:<9}  "
                     f"{j.run_id:<32}  {j.detail[:120]}")
    return "\n".join(lines)
