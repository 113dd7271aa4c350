"""Chain a benchmark's stages (Parsl apps linked by futures) and log their results.

Per kind:

- mpi4py_import: env → stage → warmup → trials
- osu, command:  env (when ``bench.env``) → trials
- mpi4py_ci:     build → sanity → deploy → trials (OSU with the deployed build) → PDF
- parsl_perf:    trials of ``parsl-perf`` in the driver (it starts its own Parsl)
"""

from __future__ import annotations

import csv
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from runners import stages
from runners.kinds import STAGED_KINDS, rank_rows, trial_argvs, trial_metrics
from runners.stages import StageError, StageResult
from runners.validate import env_spec_path


def classify(exc: BaseException, stage: str) -> StageError:
    """Turn any exception from a stage's future into a StageError with a failure kind."""
    if isinstance(exc, StageError):
        return exc
    name = type(exc).__name__
    kinds = {"ManagerLost": "worker_lost", "WorkerLost": "worker_lost",
             "BadStateException": "scheduler", "SubmitException": "scheduler"}
    message = " ".join(f"{name}: {exc}".split())   # one line
    return StageError(stage, kinds.get(name, "error"), message[:2000])


class Submitter:
    """Submit stage functions as Parsl apps on the machine's executor, or run them in the
    driver when there is no DataFlowKernel (parsl_perf starts its own)."""

    def __init__(self, dfk: Any, label: str) -> None:
        self.dfk, self.label = dfk, label
        self.submitted: list[tuple[str, Any]] = []    # (task name, AppFuture), for events

    def __call__(self, fn: Any, *args: Any) -> Any:
        if self.dfk is not None:
            from parsl import python_app

            from runners.events import stamped

            app = python_app(stamped, executors=[self.label], data_flow_kernel=self.dfk)
            app_fut = app(fn, *args)
            self.submitted.append((f"{fn.__name__}#{len(self.submitted)}", app_fut))
            return app_fut
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*[a.result() if isinstance(a, Future) else a for a in args]))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def done(result: StageResult) -> Future[Any]:
    """A future that already holds ``result``."""
    fut: Future[Any] = Future()
    fut.set_result(result)
    return fut


def wait(fut: Any, stage: str) -> StageResult:
    """The stage's result, or its failure as a StageError."""
    try:
        result: StageResult = fut.result()
    except Exception as exc:
        raise classify(exc, stage) from None
    return result


def log_stage(tracker: Any, run_id: str, res: StageResult) -> None:
    """A stage's time, metrics, tags and logs."""
    tracker.log_metrics(run_id, {f"stage.{res.stage}_s": res.seconds, **res.metrics})
    if res.tags:
        tracker.set_tags(run_id, res.tags)
    tracker.log_artifacts(run_id, res.logs, f"logs/{res.stage}")


def log_events(tracker: Any, run_id: str, submit: Submitter, out_dir: Path) -> None:
    """The task state transitions of the run, as the artifact ``events/events.csv``, and
    the retries of tasks whose worker was lost: metric ``parsl.retries`` (extra attempts in
    all) and a tag ``parsl.attempts.<task>`` per retried task, saying why."""
    from runners.events import attempts, write_events

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


def prepare(cfg: Any, submit: Submitter, logs: Path, out_dir: Path) -> tuple[list[Any], Any]:
    """Submit the stages before the trials; return ``([(name, future)], ready_future)``."""
    bench, machine = cfg.bench, cfg.machine
    timeout = float(bench.timeout_s)
    if bench.kind == "parsl_perf":
        from parsl_configs.module import write_config_module

        module = write_config_module(machine, cfg.fs.name, out_dir)
        return [], done(StageResult("prepare", 0.0, logs=[str(module)],
                                    data={"env_dir": str(module)}))
    if bench.kind == "mpi4py_ci":
        from runners import stages_ci
        from runners.launch import launch_prefix

        f_build = submit(stages_ci.build_from_source, str(env_spec_path(cfg)),
                         str(machine.env_root), str(logs / "build"), float(bench.build_timeout_s))
        prefix = launch_prefix(machine, int(bench.sanity_ranks), "{env}")
        f_sanity = submit(stages_ci.sanity, f_build, prefix, str(bench.sanity_pattern),
                          str(logs / "sanity"), timeout)
        f_deploy = submit(stages_ci.deploy, f_sanity, str(bench.release_root), str(logs / "deploy"))
        return [("build", f_build), ("sanity", f_sanity), ("deploy", f_deploy)], f_deploy
    waits: list[Any] = []
    if bench.env:
        ready = submit(stages.build_env, str(env_spec_path(cfg)), str(machine.env_root),
                       str(logs / "env"))
        waits.append(("env", ready))
    else:
        ready = done(StageResult("env", 0.0, data={"env_dir": sys.prefix}))
    if bench.kind in STAGED_KINDS:
        ready = submit(stages.stage_env, ready, str(machine.filesystems[cfg.fs.name].path),
                       str(logs / "stage"))
        waits.append(("stage", ready))
    if bench.kind == "mpi4py_import":
        ready = submit(stages.warmup, ready, [str(p) for p in bench.packages],
                       str(logs / "warmup"), bool(bench.strace), timeout)
        waits.append(("warmup", ready))
    return waits, ready


def execute(cfg: Any, dfk: Any, tracker: Any, run_id: str, out_dir: Path,
            label: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the stages and trials on executor ``label`` (default: the machine's name),
    logging each result; return the summary.  ``quiet`` draws no progress bar."""
    submit = Submitter(dfk, label or str(cfg.machine.name))
    try:
        return _execute(cfg, submit, tracker, run_id, out_dir, quiet)
    finally:    # the task transitions, also when a stage failed
        log_events(tracker, run_id, submit, out_dir)


def _execute(cfg: Any, submit: Submitter, tracker: Any, run_id: str, out_dir: Path,
             quiet: bool) -> dict[str, Any]:
    bench = cfg.bench
    logs = out_dir / "stages"
    waits, ready = prepare(cfg, submit, logs, out_dir)
    argvs = trial_argvs(cfg, "{env}")
    timeout = float(bench.timeout_s)
    parser = "parsl_perf" if bench.kind == "parsl_perf" else "json"
    prev, warm_futs, trial_futs = ready, [], []
    for i in range(int(bench.warmup)):
        prev = submit(stages.run_trial, prev, argvs, f"warmup-{i}", str(logs / "bench"), timeout,
                      parser)
        warm_futs.append(prev)
    for t in range(int(bench.trials)):
        prev = submit(stages.run_trial, prev, argvs, f"trial-{t}", str(logs / "bench"), timeout,
                      parser)
        trial_futs.append(prev)

    from runners.progress import Progress

    bar = Progress(int(bench.trials), "trials", enabled=not quiet)
    stage_times: dict[str, float] = {}
    for name, fut in waits:
        bar.update(note=f"stage: {name}")
        res = wait(fut, name)
        stage_times[name] = res.seconds
        log_stage(tracker, run_id, res)
    prepared = wait(ready, "prepare")
    if not waits:       # nothing built: keep what was prepared (parsl-perf's config module)
        tracker.log_artifacts(run_id, prepared.logs, "config")
    freeze = Path(str(prepared.data["env_dir"])) / stages.FREEZE
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
        for t, fut in enumerate(trial_futs):
            res = wait(fut, "bench")
            if t == 0 and res.tags:
                tracker.set_tags(run_id, res.tags)     # where the trials ran
            metrics = trial_metrics(str(bench.kind), res.data["results"], res.data["measured"])
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
        tracker.log_points(run_id, points)
        tracker.log_dir(run_id, str(logs / "bench"), "logs/bench")
    stage_times["bench"] = time.perf_counter() - t_bench
    return summarize_trials(cfg, tracker, run_id, out_dir, per_trial, results, stage_times)


def summarize_trials(cfg: Any, tracker: Any, run_id: str, out_dir: Path,
                     per_trial: list[dict[str, float]], results: list[list[dict[str, Any]]],
                     stage_times: dict[str, float]) -> dict[str, Any]:
    """Statistics over trials, curves per step, the results CSVs and plots as artifacts."""
    from runners.analysis.curves import directions, result_rows, step_points, units
    from runners.analysis.stats import summarize

    stats = {key: summarize([m[key] for m in per_trial]) for key in per_trial[0]}
    points = [(f"{k}.{s}", v, 0) for k, st in stats.items() for s, v in st.items()]
    points += step_points(results)
    points.append(("stage.bench_s", stage_times["bench"], 0))
    tracker.log_points(run_id, points)
    tracker.set_tags(run_id, {f"direction.{k}": v for k, v in directions(results).items()})
    files = [_write_csv(out_dir / "results.csv",
                        [row for t, rs in enumerate(results) for row in result_rows(t, rs)])]
    if cfg.bench.kind == "mpi4py_import":
        files.append(_write_csv(out_dir / "per_rank.csv",
                                [row for t, rs in enumerate(results) for row in rank_rows(t, rs)]))
    tracker.log_artifacts(run_id, [str(f) for f in files], "results")
    curves = [p for p in step_points(results) if "." not in p[0]]
    if curves and cfg.bench.kind != "mpi4py_import":     # per-rank times are in the CSV
        from runners.report.curves import plot_curves

        t0 = time.perf_counter()
        xlabel = "message size (bytes)" if cfg.bench.kind in ("osu", "mpi4py_ci") else "step"
        made = plot_curves(curves, out_dir / "plots", f"{cfg.bench.name} on {cfg.machine.name}",
                           units(results), xlabel)
        tracker.log_artifacts(run_id, [str(p) for p in made], "plots")
        stage_times["summary"] = time.perf_counter() - t0
        tracker.log_metrics(run_id, {"stage.summary_s": stage_times["summary"]})
    return {"stats": stats, "stage_times": stage_times, "trials": len(per_trial),
            "files": [str(f) for f in files], "curves": curves}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path
