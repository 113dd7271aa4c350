"""One experiment: validate → open the MLflow run → stages on Parsl → summary → close the run.

The run is opened before the first stage (status RUNNING) and always closed: FINISHED,
FAILED with ``failure.stage``/``failure.kind``/``failure.message``, or KILLED on Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from omegaconf import DictConfig, OmegaConf

from runners.entry import ConfigError
from runners.kinds import rank_rows, trial_argv, trial_metrics
from runners.stages import StageError, StageResult
from runners.validate import env_spec_path, preflight, validate

log = logging.getLogger(__name__)
VOLATILE_KEYS = ("project_root", "cache_root", "run_name", "tags", "dry_run")


def git_info(root: str) -> dict[str, str]:
    """The project's git commit and dirty flag (empty when not a git checkout)."""
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"mlflow.source.git.commit": commit, "git.commit": commit,
            "git.dirty": str(bool(dirty)).lower()} if commit else {}


def config_hash(resolved: dict[str, Any]) -> str:
    """Hash of the resolved config without volatile keys (paths, names, timestamps)."""
    stable = {k: v for k, v in resolved.items() if k not in VOLATILE_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def run_tags(cfg: DictConfig, resolved: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """The standard and project tags of a run."""
    from runners.tracking import versions

    user = getpass.getuser()
    tags = {"machine": cfg.machine.name, "fs": cfg.fs.name, "bench": cfg.bench.name,
            "host": socket.gethostname(), "user": user, "mlflow.user": user,
            "mlflow.source.name": "run.py", "mlflow.source.type": "LOCAL",
            "config.hash": config_hash(resolved), "hydra.output_dir": str(out_dir)}
    tags.update(git_info(cfg.project_root))
    tags.update(versions())
    tags.update({str(k): str(v) for k, v in cfg.tags.items()})
    return tags


def _sigterm_to_interrupt() -> None:
    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, handler)


def _classify(exc: BaseException, stage: str) -> StageError:
    """Turn any exception from a stage's future into a StageError with a failure kind."""
    if isinstance(exc, StageError):
        return exc
    name = type(exc).__name__
    kinds = {"ManagerLost": "worker_lost", "WorkerLost": "worker_lost",
             "BadStateException": "scheduler", "SubmitException": "scheduler"}
    message = " ".join(f"{name}: {exc}".split())   # one line
    return StageError(stage, kinds.get(name, "error"), message[:2000])


def _start_tracker(cfg: DictConfig, box: dict[str, Any]) -> None:
    try:
        from runners.tracking import Tracker

        tracker = Tracker(cfg.tracking.uri, cfg.tracking.artifact_root)
        box["experiment_id"] = tracker.experiment_id(experiment_name(cfg))
        box["tracker"] = tracker
    except BaseException as exc:   # reported by the caller
        box["error"] = exc


def experiment_name(cfg: DictConfig) -> str:
    """The MLflow experiment: ``tracking.experiment`` if set, else ``bench.experiment``."""
    return str(cfg.tracking.experiment or cfg.bench.experiment)


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
    from hydra.core.hydra_config import HydraConfig

    validate(cfg)
    log.info("config validated, %.2f s after process start",
             time.time() - psutil.Process().create_time())
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.dry_run:
        from runners.dryrun import print_plan

        print_plan(cfg, out_dir)
        return {"dry_run": True}
    os.environ.update({str(k): str(v) for k, v in cfg.machine.env.items()})
    preflight(cfg)
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    _sigterm_to_interrupt()
    dfk, parsl_error = None, None
    box: dict[str, Any] = {}
    loader = threading.Thread(target=_start_tracker, args=(cfg, box), daemon=True)
    try:
        from parsl.dataflow.dflow import DataFlowKernel

        import parsl_configs

        parsl_config = parsl_configs.build(cfg.machine, str(out_dir / "runinfo"), cfg.fs.name)
        loader.start()  # mlflow imports while the DFK waits for its interchange and workers
        dfk = DataFlowKernel(parsl_config)
    except Exception as exc:
        parsl_error = exc
    log.info("parsl started")
    if not loader.is_alive() and not box:
        _start_tracker(cfg, box)   # Parsl failed before the loader could start
    if loader.ident is not None:
        loader.join()
    if "error" in box:
        if dfk is not None:
            dfk.cleanup()
        raise ConfigError(f"cannot open the MLflow store {cfg.tracking.uri}: {box['error']}")
    tracker = box["tracker"]
    from runners.tracking import flatten

    run_id = tracker.start_run(experiment_name(cfg), cfg.run_name or _default_name(cfg),
                               flatten(resolved), run_tags(cfg, resolved, out_dir))
    log.info("run %s opened", run_id)
    _write_config_files(cfg, out_dir)
    tracker.log_dir(run_id, str(out_dir / ".hydra"), "config")
    try:
        if parsl_error is not None:
            raise StageError("parsl", "scheduler", f"could not start Parsl on machine="
                             f"{cfg.machine.name}: {type(parsl_error).__name__}: {parsl_error}")
        assert dfk is not None
        summary = _execute(cfg, dfk, tracker, run_id, out_dir)
        tracker.end_run(run_id, "FINISHED")
    except StageError as err:
        tracker.log_artifacts(run_id, err.logs, f"logs/{err.stage}")
        tracker.fail_run(run_id, err.stage, err.kind, err.message)
        print(f"error: {err.stage} failed ({err.kind}): {err.message} "
              f"[run {run_id} FAILED]", file=sys.stderr)
        raise SystemExit(2 if err.kind == "sanity" else 1) from None
    except KeyboardInterrupt:
        tracker.fail_run(run_id, "interrupted", "interrupted", "interrupted by the user",
                         status="KILLED")
        print(f"interrupted [run {run_id} KILLED]", file=sys.stderr)
        raise SystemExit(130) from None
    except BaseException as exc:
        tracker.fail_run(run_id, "driver", "error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        log.info("run %s closed", run_id)
        if dfk is not None:
            dfk.cleanup()
        log.info("parsl stopped")
    from runners.report_text import print_summary

    print_summary(cfg, summary, tracker, run_id, box["experiment_id"])
    return summary


def _default_name(cfg: DictConfig) -> str:
    return f"{cfg.bench.name}-{cfg.machine.name}-{cfg.fs.name}-r{cfg.bench.ranks}"


def _write_config_files(cfg: DictConfig, out_dir: Path) -> None:
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def _execute(cfg: DictConfig, dfk: Any, tracker: Any, run_id: str,
             out_dir: Path) -> dict[str, Any]:
    """Chain the stages as Parsl apps, then log each result as its future completes."""
    from parsl import python_app

    from runners import stages

    label = str(cfg.machine.name)

    def app(fn: Any) -> Any:
        return python_app(fn, executors=[label], data_flow_kernel=dfk)

    logs = out_dir / "stages"
    bench = cfg.bench
    timeout = float(bench.timeout_s)
    fs_root = str(cfg.machine.filesystems[cfg.fs.name].path)
    f_env = app(stages.build_env)(str(env_spec_path(cfg)), str(cfg.machine.env_root),
                                  str(logs / "env"))
    f_stage = app(stages.stage_env)(f_env, fs_root, str(logs / "stage"))
    f_warm = app(stages.warmup)(f_stage, [str(p) for p in bench.packages], str(logs / "warmup"),
                                bool(bench.strace), timeout)
    argv = trial_argv(cfg, "{env}")
    trial_app = app(stages.run_trial)
    prev = f_warm
    warm_futs, trial_futs = [], []
    for i in range(int(bench.warmup)):
        prev = trial_app(prev, argv, f"warmup-{i}", str(logs / "bench"), timeout)
        warm_futs.append(prev)
    for t in range(int(bench.trials)):
        prev = trial_app(prev, argv, f"trial-{t}", str(logs / "bench"), timeout)
        trial_futs.append(prev)

    stage_times: dict[str, float] = {}
    for name, fut in (("env", f_env), ("stage", f_stage), ("warmup", f_warm)):
        res = _wait(fut, name)
        log.info("stage %s done in %.2f s", name, res.seconds)
        stage_times[name] = res.seconds
        _log_stage(tracker, run_id, res)
    env_dir = f_warm.result().data["env_dir"]
    tracker.log_artifacts(run_id, [str(Path(env_dir) / stages.FREEZE)], "env")
    for fut in warm_futs:
        _wait(fut, "bench")
    per_trial: list[dict[str, float]] = []
    rows: list[dict[str, Any]] = []
    points: list[tuple[str, float, int]] = []
    t_bench = time.perf_counter()
    try:    # log once the trials are done, so the driver does not compete with them
        for t, fut in enumerate(trial_futs):
            res = _wait(fut, "bench")
            metrics = trial_metrics(res.data["results"], res.data["measured"])
            per_trial.append(metrics)
            rows.extend(rank_rows(t, res.data["results"]))
            points += [(k, v, t) for k, v in metrics.items()]
            points += [(f"host.{k}.{when}", v, t) for when in ("before", "after")
                       for k, v in res.data["measured"][f"host_{when}"].items()]
    finally:    # trials that completed stay logged, whatever happens to the next one
        tracker.log_points(run_id, points)
    stage_times["bench"] = time.perf_counter() - t_bench
    return _summarize(cfg, tracker, run_id, out_dir, per_trial, rows, stage_times)


def _wait(fut: Any, stage: str) -> StageResult:
    try:
        result: StageResult = fut.result()
    except Exception as exc:
        raise _classify(exc, stage) from None
    return result


def _log_stage(tracker: Any, run_id: str, res: StageResult) -> None:
    tracker.log_metrics(run_id, {f"stage.{res.stage}_s": res.seconds, **res.metrics})
    if res.tags:
        tracker.set_tags(run_id, res.tags)
    tracker.log_artifacts(run_id, res.logs, f"logs/{res.stage}")


def _summarize(cfg: DictConfig, tracker: Any, run_id: str, out_dir: Path,
               per_trial: list[dict[str, float]], rows: list[dict[str, Any]],
               stage_times: dict[str, float]) -> dict[str, Any]:
    """Statistics over trials, the per-rank CSV, and the bench logs as artifacts."""
    from runners.analysis.stats import summarize

    stats: dict[str, dict[str, float]] = {}
    for key in per_trial[0]:
        stats[key] = summarize([m[key] for m in per_trial])
        tracker.log_metrics(run_id, {f"{key}.{s}": v for s, v in stats[key].items()})
    tracker.log_metrics(run_id, {"stage.bench_s": stage_times["bench"]})
    csv_path = out_dir / "per_rank.csv"
    with open(csv_path, "w", newline="") as fh:
        fields = ["trial", "rank", "host", "launch_step", "mpi_init_s", "import_s",
                  "rank_total_s"]
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tracker.log_artifacts(run_id, [str(csv_path)], "results")
    tracker.log_dir(run_id, str(out_dir / "stages" / "bench"), "logs/bench")
    return {"stats": stats, "stage_times": stage_times, "trials": len(per_trial),
            "per_rank_csv": str(csv_path)}
