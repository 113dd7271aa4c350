"""The only place that builds Parsl configs from a machine config.

``build(machine, run_dir)`` returns a :class:`parsl.config.Config` with one
HighThroughputExecutor labelled with the machine's name, built by the machine's scheduler
record (:mod:`parsl_configs.scheduler`, one module per scheduler in ``schedulers/``), with
the retry policy of :mod:`parsl_configs.retry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parsl_configs.retry import apply
from parsl_configs.scheduler import scheduler
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.config import Config


def build(machine: MachineConfig, run_dir: str, fs_name: str | None = None,
          max_idletime: float | None = None) -> Config:
    """Build the Parsl config for a machine.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        The machine section of the experiment config.
    run_dir : str
        Parsl's run directory (under the Hydra output directory).
    fs_name : str, optional
        The chosen filesystem (its job directives, e.g. DataWarp's, go in the batch script).
    max_idletime : float, optional
        Seconds a block may stay idle before Parsl's strategy releases it (a site agent's
        ``site.idle_min``); default Parsl's.

    Returns
    -------
    parsl.config.Config
    """
    record = scheduler(str(machine.scheduler))
    config = record.config(machine, run_dir, fs_name)
    if max_idletime is not None:
        config.max_idletime = float(max_idletime)
    return apply(config, int(getattr(machine, "retries", 0)), {str(machine.name): record})


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

    executors, period, retries, records = [], 5.0, 0, {}
    for label, machine, fs_name in targets:
        retries = max(retries, int(getattr(machine, "retries", 0)))
        one = build(machine, run_dir, fs_name)
        for executor in one.executors:
            executor.label = label
            executors.append(executor)
        records[label] = scheduler(str(machine.scheduler))
        period = min(period, float(one.strategy_period))
    return apply(Config(executors=executors, run_dir=run_dir, strategy_period=period,
                        usage_tracking=0, initialize_logging=True), retries, records)
