"""Chain a run's stages (Parsl apps linked by futures) and log their results.

The kind says which stages come before the trials (:meth:`runners.kinds.base.Kind.prepare`:
env → stage → warm-up, or build → sanity → deploy ...) and what one trial runs
(:meth:`~runners.kinds.base.Kind.commands`); here they are submitted, waited for and
logged, the trials are summarized, and the results, curves and plots are recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from parsl_configs.scheduler import job_id_vars
from runners.analysis.curves import directions, result_rows, step_points, units
from runners.analysis.merits import FOM_TAG
from runners.analysis.stats import summarize
from runners.errors import one_line
from runners.kinds.base import Kind, Merit, write_csv
from runners.run.progress import Progress
from runners.run.task_events import attempts, write_events
from runners.stages import telemetry
from runners.stages.base import FREEZE, StageError, StageResult, stamped
from runners.stages.launch import per_node_prefix
from runners.stages.trial import run_trial
from runners.tracking.tracker import Tracker

log = logging.getLogger(__name__)

#: Parsl's exceptions (by class name) that say why a task failed without running.
PARSL_FAILURES = {"ManagerLost": "worker_lost", "WorkerLost": "worker_lost",
                  "BadStateException": "scheduler", "SubmitException": "scheduler"}


def classify(exc: BaseException, stage: str) -> StageError:
    """Turn any exception from a stage's future into a StageError with a failure kind."""
    if isinstance(exc, StageError):
        return exc
    return StageError(stage, PARSL_FAILURES.get(type(exc).__name__, "error"),
                      one_line(exc, 2000))


class Submitter:
    """Submit stage functions as Parsl apps on the machine's executor, or run them in the
    driver when there is no DataFlowKernel (a kind with its own Parsl).  Each runs under
    :func:`runners.stages.base.stamped`, which records where and when it ran."""

    def __init__(self, dfk: Any, label: str, job_id_vars: tuple[str, ...] = ()) -> None:
        self.dfk, self.label, self.job_id_vars = dfk, label, job_id_vars
        self.submitted: list[tuple[str, Any]] = []    # (task name, AppFuture), for events

    def __call__(self, fn: Callable[..., StageResult], *args: Any) -> Future[StageResult]:
        if self.dfk is not None:
            from parsl import python_app

            app = python_app(stamped, executors=[self.label], data_flow_kernel=self.dfk)
            app_fut: Future[StageResult] = app(fn, self.job_id_vars, *args)
            self.submitted.append((f"{fn.__name__}#{len(self.submitted)}", app_fut))
            return app_fut
        fut: Future[StageResult] = Future()
        try:
            values = [a.result() if isinstance(a, Future) else a for a in args]
            fut.set_result(stamped(fn, self.job_id_vars, *values))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def wait(fut: Future[StageResult], stage: str) -> StageResult:
    """The stage's result, or its failure as a StageError."""
    try:
        return fut.result()
    except Exception as exc:
        raise classify(exc, stage) from None


def log_stage(tracker: Tracker, run_id: str, res: StageResult) -> None:
    """A stage's time, metrics, tags and logs."""
    tracker.log_metrics(run_id, {f"stage.{res.stage}_s": res.seconds, **res.metrics})
    if res.tags:
        tracker.set_tags(run_id, res.tags)
    tracker.log_artifacts(run_id, res.logs, f"logs/{res.stage}")


def log_events(tracker: Tracker, run_id: str, submit: Submitter, out_dir: Path) -> None:
    """The task state transitions of the run, as the artifact ``events/events.csv``, and
    the retries of tasks whose worker was lost: metric ``parsl.retries`` (extra attempts in
    all) and a tag ``parsl.attempts.<task>`` per retried task, saying why."""
    path = write_events(submit.submitted, out_dir / "events.csv")
    if path is not None:
        tracker.log_artifacts(run_id, [str(path)], "events")
    retried = attempts(submit.submitted)
    if submit.dfk is not None:
        tracker.log_metrics(run_id, {"parsl.retries": sum(n - 1 for n, _ in retried.values())})
    if retried:
        tracker.set_tags(run_id, {f"parsl.attempts.{name.replace('#', '.')}":
                                  f"{n} attempts; failed: {' | '.join(why)}"
                                  for name, (n, why) in retried.items()})


def execute(cfg: DictConfig, kind: Kind, dfk: Any, tracker: Tracker, run_id: str,
            out_dir: Path, label: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the stages and trials on executor ``label`` (default: the machine's name),
    logging each result; return the summary.  ``quiet`` draws no progress bar."""
    submit = Submitter(dfk, label or str(cfg.machine.name),
                       job_id_vars(str(cfg.machine.scheduler)))
    try:
        return run_trials(kind, submit, tracker, run_id, out_dir, quiet)
    finally:    # the task transitions, also when a stage failed
        log_events(tracker, run_id, submit, out_dir)


#: Trials submitted ahead of the one waited for.  Each runs after the one before it on the
#: worker (no round trip to the driver between them); a failure fails only those queued
#: behind it, not all the rest (a chain of 1,000 dependency failures overflowed Parsl's
#: error reporting).
AHEAD = 8


def run_trials(kind: Kind, submit: Submitter, tracker: Tracker, run_id: str, out_dir: Path,
               quiet: bool) -> dict[str, Any]:
    """The kind's stages, then the warm-up and counted trials, logged as they end."""
    bench = kind.bench
    logs = out_dir / "stages"
    prepared = kind.prepare(submit, out_dir)
    commands = kind.commands("{env}")
    timeout = float(bench.timeout_s)
    prev, warm_futs, trial_futs = prepared.ready, [], []
    for i in range(int(bench.warmup)):
        prev = submit(run_trial, prev, commands, f"warmup-{i}", str(logs / "bench"), timeout)
        warm_futs.append(prev)
    started = start_telemetry(kind, submit, prev, out_dir)
    prev = started or prev
    trials = int(bench.trials)
    for t in range(min(AHEAD, trials)):
        prev = submit(run_trial, prev, commands, f"trial-{t}", str(logs / "bench"), timeout)
        trial_futs.append(prev)

    bar = Progress(int(bench.trials), "trials", enabled=not quiet)
    stage_times: dict[str, float] = {}
    for name, fut in prepared.waits:
        bar.update(note=f"stage: {name}")
        res = wait(fut, name)
        stage_times[name] = res.seconds
        log_stage(tracker, run_id, res)
    ready = wait(prepared.ready, "prepare")
    if not prepared.waits:   # nothing built: keep what was prepared (e.g. a config module)
        tracker.log_artifacts(run_id, ready.logs, "config")
    freeze = Path(str(ready.data["env_dir"])) / FREEZE
    tracker.log_artifacts(run_id, [str(freeze)], "env")     # skipped when there is none
    bar.update(note="warm-up trials" if warm_futs else "stage: bench")
    for fut in warm_futs:
        wait(fut, "bench")
    bar.update(note="stage: bench")
    bar.start_counting()
    per_trial: list[dict[str, float]] = []
    results: list[list[dict[str, Any]]] = []
    points: list[tuple[str, float, int]] = []
    t_bench = time.perf_counter()
    try:    # log once the trials are done, so the driver does not compete with them
        for t in range(trials):
            if t + AHEAD < trials:      # keep AHEAD trials queued behind this one
                trial_futs.append(submit(run_trial, trial_futs[-1], commands,
                                         f"trial-{t + AHEAD}", str(logs / "bench"), timeout))
            res = wait(trial_futs[t], "bench")
            if t == 0 and res.tags:
                tracker.set_tags(run_id, res.tags)     # where the trials ran
            metrics = kind.trial_metrics(res.data["results"], res.data["measured"])
            # bytes cut from huge logs (0 when none: every trial has the same keys)
            metrics["bench.log_truncated_bytes"] = res.metrics.get("bench.log_truncated_bytes",
                                                                   0.0)
            per_trial.append(metrics)
            results.append(res.data["results"])
            points += [(k, v, t) for k, v in metrics.items()]
            points += [(f"host.{k}.{when}", v, t) for when in ("before", "after")
                       for k, v in res.data["measured"][f"host_{when}"].items()]
            bar.update(done=t + 1)
    finally:
        bar.close()    # trials that completed stay logged, whatever happens to the next one
        if started is not None:
            points += stop_telemetry(submit, started, tracker, run_id, out_dir)
        tracker.log_points(run_id, points)
        tracker.log_dir(run_id, str(logs / "bench"), "logs/bench")
    stage_times["bench"] = time.perf_counter() - t_bench
    return summarize_trials(kind, tracker, run_id, out_dir, per_trial, results, stage_times)


def start_telemetry(kind: Kind, submit: Submitter, after: Future[StageResult],
                    out_dir: Path) -> Future[StageResult] | None:
    """Start the per-node samplers before the first trial (``telemetry.enabled``)."""
    tele = kind.cfg.get("telemetry")
    if not tele or not tele.enabled or submit.dfk is None:
        return None
    return submit(telemetry.start, after, per_node_prefix(kind.cfg.machine),
                  str(out_dir / "telemetry"), float(tele.interval_s))


def stop_telemetry(submit: Submitter, started: Future[StageResult], tracker: Tracker,
                   run_id: str, out_dir: Path) -> list[tuple[str, float, int]]:
    """Stop the samplers; log each node's summary and files; return its samples as
    points (``telemetry.<host>.<field>`` at step = seconds since the start)."""
    try:
        pid = int(started.result(timeout=60).data["telemetry_pid"])
        res = submit(telemetry.stop, pid, str(out_dir / "telemetry")).result(timeout=120)
    except Exception as exc:        # noqa: BLE001 - telemetry never fails a run
        log.warning("telemetry: %s", one_line(exc, 300))
        return []
    log_stage(tracker, run_id, res)
    return [(f"telemetry.{host}.{field}", row[field], int(row["t_s"]))
            for host, rows in res.data["series"].items() for row in rows
            for field in telemetry.FIELDS[1:] if field in row]


def merit_tags(merits: list[Merit], results: list[list[dict[str, Any]]]) -> dict[str, str]:
    """The tags that say what a run measured: ``direction.<name>`` of every result and
    figure of merit, ``unit.<name>`` of each figure of merit that has a unit, and ``fom``,
    the figures of merit, headline first (what ``regress``, ``report`` and ``compare``
    judge; see :mod:`runners.analysis.merits`)."""
    tags = {f"direction.{name}": how for name, how in directions(results).items()}
    for merit in merits:
        tags[f"direction.{merit.name}"] = merit.direction
        if merit.unit:
            tags[f"unit.{merit.name}"] = merit.unit
    if merits:
        tags[FOM_TAG] = ",".join(m.name for m in merits)
    return tags


def summarize_trials(kind: Kind, tracker: Tracker, run_id: str, out_dir: Path,
                     per_trial: list[dict[str, float]], results: list[list[dict[str, Any]]],
                     stage_times: dict[str, float]) -> dict[str, Any]:
    """Statistics over trials, curves per step, the results CSVs and plots as artifacts."""
    cfg = kind.cfg
    stats = {key: summarize([m[key] for m in per_trial]) for key in per_trial[0]}
    points = [(f"{k}.{s}", v, 0) for k, st in stats.items() for s, v in st.items()]
    points += step_points(results)
    points.append(("stage.bench_s", stage_times["bench"], 0))
    tracker.log_points(run_id, points)
    merits = kind.merits([r for rs in results for r in rs])
    tracker.set_tags(run_id, merit_tags(merits, results))
    files = [write_csv(out_dir / "results.csv",
                       [row for t, rs in enumerate(results) for row in result_rows(t, rs)]),
             *kind.files(results, out_dir)]
    tracker.log_artifacts(run_id, [str(f) for f in files], "results")
    curves = [p for p in step_points(results) if "." not in p[0]]
    if curves and kind.plots:
        from runners.report.curves import plot_curves

        t0 = time.perf_counter()
        made = plot_curves(curves, out_dir / "plots", f"{cfg.bench.name} on {cfg.machine.name}",
                           units(results), kind.xlabel())
        tracker.log_artifacts(run_id, [str(p) for p in made], "plots")
        stage_times["summary"] = time.perf_counter() - t0
        tracker.log_metrics(run_id, {"stage.summary_s": stage_times["summary"]})
    return {"stats": stats, "stage_times": stage_times, "trials": len(per_trial),
            "files": [str(f) for f in files], "curves": curves,
            "shown": kind.shown(stats, merits)}
