"""A run's life in the store: open it (RUNNING, with params, tags and config files), run its
stages, and close it FINISHED, FAILED with ``failure.stage``/``failure.kind``/
``failure.message``, or KILLED on Ctrl-C or SIGTERM.  A run is never left open."""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from parsl_configs.scheduler import scheduler
from runners.errors import ConfigError, RunFailed, one_line
from runners.kinds.base import Kind
from runners.stages.base import StageError
from runners.stages.launch import launch_nodes
from runners.tracking.driver import driver_tags
from runners.tracking.queue import QUEUED, set_status
from runners.tracking.spool import pending
from runners.tracking.store import flatten, versions
from runners.tracking.tracker import Tracker

log = logging.getLogger(__name__)
# Left out of the config hash: paths, names and switches that do not change what is measured
VOLATILE_KEYS = ("project_root", "cache_root", "run_name", "tags", "dry_run", "tracking",
                 "rerun", "skip_invalid", "select", "seed", "redact", "telemetry", "site")


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


def config_hash(resolved: dict[str, Any], kind: Kind) -> str:
    """Hash of the resolved config without volatile keys (paths, names, timestamps), its
    ``bench`` section as the kind hashes it (:meth:`runners.kinds.base.Kind.hashed`)."""
    stable = {k: v for k, v in resolved.items() if k not in VOLATILE_KEYS}
    if isinstance(stable.get("bench"), dict):
        stable["bench"] = kind.hashed(stable["bench"])
    machine = stable.get("machine")
    if isinstance(machine, dict) and isinstance(machine.get("filesystems"), dict):
        # A filesystem's scope (added later) describes it; it does not change what is run.
        stable["machine"] = dict(machine, filesystems={
            name: {k: v for k, v in fs.items() if k != "scope"} if isinstance(fs, dict) else fs
            for name, fs in machine["filesystems"].items()})
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def experiment_name(cfg: DictConfig) -> str:
    """The MLflow experiment: ``tracking.experiment`` if set, else ``bench.experiment``."""
    return str(cfg.tracking.experiment or cfg.bench.experiment)


def default_run_name(cfg: DictConfig) -> str:
    """``<bench>-<machine>-<fs>-r<ranks>``."""
    return f"{cfg.bench.name}-{cfg.machine.name}-{cfg.fs.name}-r{cfg.bench.ranks}"


def run_tags(cfg: DictConfig, kind: Kind, resolved: dict[str, Any],
             out_dir: Path) -> dict[str, str]:
    """The standard and project tags of a run."""
    user = getpass.getuser()
    tags = {"machine": cfg.machine.name, "fs": cfg.fs.name, "bench": cfg.bench.name,
            "host": socket.gethostname(), "user": user, "mlflow.user": user,
            "mlflow.source.name": "run.py", "mlflow.source.type": "LOCAL",
            "config.hash": config_hash(resolved, kind), "hydra.output_dir": str(out_dir)}
    if kind.uses_launcher():
        # Which figures are between nodes and which within one (e.g. OSU on 2 ranks).
        nodes = launch_nodes(cfg.machine, int(cfg.bench.ranks))
        tags.update({"launch.nodes": str(nodes),
                     "launch.placement": "inter-node" if nodes > 1 else "intra-node"})
    tags.update(driver_tags())
    tags.update(git_info(cfg.project_root))
    tags.update(versions())
    tags.update({str(k): str(v) for k, v in cfg.tags.items()})
    return tags


def sigterm_to_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread (the run ends KILLED)."""
    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, handler)


def open_tracker(cfg: DictConfig) -> tuple[Tracker, str]:
    """The tracker and the experiment's id; a store that cannot be opened is a ConfigError."""
    try:
        tracker = Tracker(cfg.tracking.uri, cfg.tracking.artifact_root,
                          spool=cfg.tracking.get("spool") or None,
                          redact=[str(p) for p in cfg.get("redact") or ()])
        experiment_id = tracker.experiment_id(experiment_name(cfg))
    except Exception as exc:
        raise ConfigError(f"cannot open the MLflow store {cfg.tracking.uri}: "
                          f"{one_line(exc, 500)}") from None
    if tracker.spool is not None and tracker.offline_reason is None:
        waiting = len(pending(tracker.spool.root))
        if waiting:
            print(f"note: {waiting} run(s) recorded while the tracking server could not be "
                  f"reached wait in {tracker.spool.root}; upload them with `bench sync`",
                  file=sys.stderr)
    return tracker, experiment_id


def open_run(cfg: DictConfig, kind: Kind, tracker: Tracker, out_dir: Path,
             parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
             queued: bool = False) -> str:
    """Open the experiment's MLflow run (RUNNING) with its params, tags and config files;
    ``queued``: as SCHEDULED, for a site's agent to run (:mod:`runners.tracking.queue`)."""
    if queued and tracker.offline_reason is not None:     # the queue is the store itself
        raise ConfigError(f"cannot queue the run for site={cfg.site.name}: the tracking "
                          f"server {tracker.uri} cannot be reached ({tracker.offline_reason})"
                          "; try again when it answers, or run it here without site=")
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    tags = {**run_tags(cfg, kind, resolved, out_dir), **(extra_tags or {})}
    params = {**flatten(resolved), **kind.params()}
    run_id = tracker.start_run(experiment_name(cfg), cfg.run_name or default_run_name(cfg),
                               params, tags, parent_run_id)
    log.info("run %s opened", run_id)
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_dir(run_id, str(hydra_dir), "config")
    environment = out_dir / "environment.json"
    environment.write_text(json.dumps(tracker.redactor.environment(), indent=1) + "\n")
    tracker.log_artifacts(run_id, [str(environment)], "provenance")
    if queued:      # last: an agent may take it from now on, config files and all
        set_status(tracker.online, run_id, QUEUED)
    return run_id


def close_run(cfg: DictConfig, kind: Kind, dfk: Any, tracker: Tracker, run_id: str,
              out_dir: Path, parsl_error: BaseException | None = None,
              label: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the stages of an open run and close it FINISHED, FAILED or KILLED.

    Parameters
    ----------
    cfg : DictConfig
        The experiment config.
    kind : Kind
        The benchmark's kind.
    dfk : DataFlowKernel or None
        Parsl (None when it could not start, see ``parsl_error``, or for a kind with its
        own Parsl).
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
        from runners.run.pipeline import execute  # deferred: numpy, for a dry run's start

        summary = execute(cfg, kind, dfk, tracker, run_id, out_dir, label, quiet)
        tracker.end_run(run_id, "FINISHED")
    except StageError as err:
        err = explain(err, cfg, dfk, label)
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


def explain(err: StageError, cfg: DictConfig, dfk: Any, label: str) -> StageError:
    """Name the scheduler's reason (e.g. walltime) when a lost worker or block caused ``err``."""
    if dfk is None or err.kind not in ("worker_lost", "scheduler", "error"):
        return err
    from parsl_configs.diagnose import block_failure

    found = block_failure(dfk.executors.get(label), scheduler(str(cfg.machine.scheduler)))
    if found is None:
        return err
    kind, reason = found
    return StageError(err.stage, kind, f"{reason}; {err.message}", err.logs)
