"""One experiment: validate → open the MLflow run → stages on Parsl → summary → close the run.

The run is opened before the first stage (status RUNNING) and always closed: FINISHED,
FAILED with ``failure.stage``/``failure.kind``/``failure.message``, or KILLED on Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

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
from runners.pipeline import execute
from runners.resume import driver_tags, mark_children, parsl_pids, reap_stale
from runners.stages import StageError
from runners.validate import preflight, validate

log = logging.getLogger(__name__)
# Left out of the config hash: paths, names and switches that do not change what is measured
VOLATILE_KEYS = ("project_root", "cache_root", "run_name", "tags", "dry_run", "tracking",
                 "rerun", "skip_invalid", "select", "seed", "redact")


class RunFailed(SystemExit):
    """A run ended FAILED or KILLED; ``reason`` says where and why (the exit code is set)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code)
        self.reason = reason


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
    tags.update(driver_tags())
    tags.update(git_info(cfg.project_root))
    tags.update(versions())
    tags.update({str(k): str(v) for k, v in cfg.tags.items()})
    return tags


def _sigterm_to_interrupt() -> None:
    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, handler)


def open_tracker(cfg: DictConfig) -> tuple[Any, str]:
    """The tracker and the experiment's id; a store that cannot be opened is a ConfigError."""
    from runners.tracking import Tracker

    try:
        tracker = Tracker(cfg.tracking.uri, cfg.tracking.artifact_root,
                          spool=cfg.tracking.get("spool") or None,
                          redact=[str(p) for p in cfg.get("redact") or ()])
        experiment_id = tracker.experiment_id(experiment_name(cfg))
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        raise ConfigError(f"cannot open the MLflow store {cfg.tracking.uri}: {reason}") from None
    if tracker.spool is not None and tracker.offline_reason is None:
        from runners.spool import pending

        waiting = len(pending(tracker.spool.root))
        if waiting:
            print(f"note: {waiting} run(s) recorded while the tracking server could not be "
                  f"reached wait in {tracker.spool.root}; upload them with `bench sync`",
                  file=sys.stderr)
    return tracker, experiment_id


def experiment_name(cfg: DictConfig) -> str:
    """The MLflow experiment: ``tracking.experiment`` if set, else ``bench.experiment``."""
    return str(cfg.tracking.experiment or cfg.bench.experiment)


def run_experiment(cfg: DictConfig) -> Any:
    """Run one experiment end to end and record it; return a summary dict.

    Inside a sweep run by the Parsl launcher, the job is handed to the sweep instead and
    a :class:`concurrent.futures.Future` of its summary is returned.

    Raises
    ------
    ConfigError
        Bad input found before the run was opened (exit code 2 via the entry wrapper).
    SystemExit
        2 when a stage's sanity check failed (the run is FAILED), 1 on other failures,
        130 on interrupt (the run is KILLED).
    """
    from hydra.core.hydra_config import HydraConfig

    from runners.sweep import current_sweep

    validate(cfg)
    log.info("config validated, %.2f s after process start",
             time.time() - psutil.Process().create_time())
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.dry_run:
        from runners.dryrun import print_plan

        print_plan(cfg, out_dir)
        return {"dry_run": True}
    sweep = current_sweep()
    if sweep is not None:
        return sweep.submit(cfg, out_dir)
    os.environ.update({str(k): str(v) for k, v in cfg.machine.env.items()})
    preflight(cfg)
    _sigterm_to_interrupt()
    mark_children()
    dfk, parsl_error = None, None
    if cfg.bench.kind != "parsl_perf":      # parsl-perf starts its own Parsl
        try:
            from parsl.dataflow.dflow import DataFlowKernel

            import parsl_configs

            dfk = DataFlowKernel(parsl_configs.build(cfg.machine, str(out_dir / "runinfo"),
                                                     cfg.fs.name))
        except Exception as exc:
            parsl_error = exc
    log.info("parsl started")
    # mlflow imports now, while Parsl's worker processes boot; imported before the DFK it
    # slowed the interchange's start (0.8 s per run on 2 cores, benchmarks/results/overhead.md)
    try:
        tracker, experiment_id = open_tracker(cfg)
        reap_stale(tracker, [experiment_name(cfg)], "a run of the same experiment")
        run_id = open_run(cfg, tracker, out_dir,
                          extra_tags={"driver.parsl_pids": parsl_pids(dfk)} if dfk else None)
        summary = close_run(cfg, dfk, tracker, run_id, out_dir, parsl_error)
    finally:
        if dfk is not None:
            dfk.cleanup()
        log.info("parsl stopped")
    from runners.report_text import print_summary

    print_summary(cfg, summary, tracker, run_id, experiment_id)
    return summary


def open_run(cfg: DictConfig, tracker: Any, out_dir: Path, parent_run_id: str | None = None,
             extra_tags: dict[str, str] | None = None) -> str:
    """Open the experiment's MLflow run (RUNNING) with its params, tags and config files."""
    from runners.tracking import flatten

    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    tags = {**run_tags(cfg, resolved, out_dir), **(extra_tags or {})}
    run_id: str = tracker.start_run(experiment_name(cfg), cfg.run_name or _default_name(cfg),
                                    flatten(resolved), tags, parent_run_id)
    log.info("run %s opened", run_id)
    _write_config_files(cfg, out_dir)
    tracker.log_dir(run_id, str(out_dir / ".hydra"), "config")
    tracker.log_artifacts(run_id, [str(_write_environment(tracker, out_dir))], "provenance")
    return run_id


def _write_environment(tracker: Any, out_dir: Path) -> Path:
    """The driver's environment variables, secret-looking ones redacted, as a JSON file."""
    path = out_dir / "environment.json"
    path.write_text(json.dumps(tracker.redactor.environment(), indent=1) + "\n")
    return path


def close_run(cfg: DictConfig, dfk: Any, tracker: Any, run_id: str, out_dir: Path,
              parsl_error: BaseException | None = None, label: str | None = None,
              quiet: bool = False) -> dict[str, Any]:
    """Run the stages of an open run and close it FINISHED, FAILED or KILLED.

    Parameters
    ----------
    cfg : DictConfig
        The experiment config.
    dfk : DataFlowKernel or None
        Parsl (None when it could not start, see ``parsl_error``, or for parsl_perf).
    tracker, run_id : Tracker, str
        Where the run is recorded.
    out_dir : Path
        The job's output directory.
    parsl_error : BaseException, optional
        Why Parsl could not start; the run fails with ``failure.kind=scheduler``.
    label : str, optional
        The Parsl executor to use (default: the machine's name).
    quiet : bool
        No progress bar (a sweep draws its own).

    Returns
    -------
    dict
        The summary of the trials.
    """
    label = label or str(cfg.machine.name)
    try:
        if parsl_error is not None:
            raise StageError("parsl", "scheduler", f"could not start Parsl on machine="
                             f"{cfg.machine.name}: {type(parsl_error).__name__}: {parsl_error}")
        summary = execute(cfg, dfk, tracker, run_id, out_dir, label, quiet)
        tracker.end_run(run_id, "FINISHED")
    except StageError as err:
        err = _explain(err, dfk, label)
        tracker.log_artifacts(run_id, err.logs, f"logs/{err.stage}")
        tracker.fail_run(run_id, err.stage, err.kind, err.message)
        print(f"error: {err.stage} failed ({err.kind}): {err.message} "
              f"[run {run_id} FAILED]", file=sys.stderr)
        raise RunFailed(2 if err.kind == "sanity" else 1,
                        f"{err.stage} failed ({err.kind}): {err.message}") from None
    except KeyboardInterrupt:
        tracker.fail_run(run_id, "interrupted", "interrupted", "interrupted by the user",
                         status="KILLED")
        print(f"interrupted [run {run_id} KILLED]", file=sys.stderr)
        raise RunFailed(130, "interrupted") from None
    except BaseException as exc:
        tracker.fail_run(run_id, "driver", "error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        log.info("run %s closed", run_id)
    return summary


def _explain(err: StageError, dfk: Any, label: str) -> StageError:
    """Name the scheduler's reason (e.g. walltime) when a lost worker or block caused ``err``."""
    if dfk is None or err.kind not in ("worker_lost", "scheduler", "error"):
        return err
    from parsl_configs.diagnose import block_failure

    found = block_failure(dfk.executors.get(label))
    if found is None:
        return err
    kind, reason = found
    return StageError(err.stage, kind, f"{reason}; {err.message}", err.logs)


def _default_name(cfg: DictConfig) -> str:
    return f"{cfg.bench.name}-{cfg.machine.name}-{cfg.fs.name}-r{cfg.bench.ranks}"


def _write_config_files(cfg: DictConfig, out_dir: Path) -> None:
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
