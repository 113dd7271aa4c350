"""The only place that builds Parsl configs from a machine config.

``build(machine, run_dir)`` returns a :class:`parsl.config.Config` with one
HighThroughputExecutor labelled with the machine's name.  Each scheduler has a module
here; each module also exposes ``fresh_config()`` (Parsl's convention for site configs),
so ``parsl-perf --config parsl_configs/local.py`` works too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parsl.config import Config


def python_bin_dir() -> str:
    """The directory of the running interpreter (Parsl finds its worker scripts on PATH)."""
    return str(Path(sys.executable).parent)


def ensure_python_on_path() -> None:
    """Put this interpreter's ``bin/`` first on PATH, so HTEX finds ``interchange.py``."""
    bindir = python_bin_dir()
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def build(machine: Any, run_dir: str, fs_name: str | None = None) -> Config:
    """Build the Parsl config for a machine.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        The machine section of the experiment config.
    run_dir : str
        Parsl's run directory (under the Hydra output directory).
    fs_name : str, optional
        The chosen filesystem (its job directives, e.g. DataWarp's, go in the batch script).

    Returns
    -------
    parsl.config.Config
    """
    from parsl_configs.retry import apply

    scheduler = str(machine.scheduler)
    retries = int(getattr(machine, "retries", 0))
    if scheduler == "local":
        from parsl_configs import local

        return apply(local.config_for(machine, run_dir), retries)
    if scheduler in ("slurm", "pbspro", "cobalt"):
        from parsl_configs import batch

        return apply(batch.config_for(machine, run_dir, fs_name), retries)
    if scheduler == "kubernetes":
        from parsl_configs import kubernetes

        return apply(kubernetes.config_for(machine, run_dir), retries)
    raise ValueError(f"no Parsl config for scheduler {scheduler!r}; "
                     "valid: local, slurm, pbspro, cobalt, kubernetes")


def build_many(targets: list[tuple[str, Any, str | None]], run_dir: str) -> Config:
    """One Parsl config with an executor per target, for a sweep across machines.

    Parameters
    ----------
    targets : list of (label, machine, fs_name)
        The executor label, the machine section and the filesystem of each executor.
    run_dir : str
        Parsl's run directory (the sweep's).

    Returns
    -------
    parsl.config.Config
    """
    from parsl.config import Config

    from parsl_configs.retry import apply

    executors, period, retries = [], 5.0, 0
    for label, machine, fs_name in targets:
        retries = max(retries, int(getattr(machine, "retries", 0)))
        one = build(machine, run_dir, fs_name)
        for executor in one.executors:
            executor.label = label
            executors.append(executor)
        period = min(period, float(one.strategy_period))
    return apply(Config(executors=executors, run_dir=run_dir, strategy_period=period,
                        usage_tracking=0, initialize_logging=True), retries)
