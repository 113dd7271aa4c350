"""``scheduler: local``: this host's processes; HighThroughputExecutor + LocalProvider on
127.0.0.1.  ``parsl-perf --config parsl_configs/schedulers/local.py`` uses
:func:`fresh_config`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parsl_configs.python_path import ensure_python_on_path
from parsl_configs.scheduler import Scheduler, Submission
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.config import Config


def config(machine: MachineConfig, run_dir: str = "runinfo", fs_name: str | None = None) -> Config:
    """Build the local Parsl config.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        Uses ``name``, ``max_workers``, ``worker_init`` and ``strategy_period``.
    run_dir : str
        Parsl's run directory.
    fs_name : str, optional
        Unused: local filesystems need no job directive.

    Returns
    -------
    parsl.config.Config
    """
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import LocalProvider

    ensure_python_on_path()
    executor = HighThroughputExecutor(
        label=str(machine.name),
        address="127.0.0.1",
        loopback_address="127.0.0.1",
        max_workers_per_node=int(machine.max_workers),
        heartbeat_period=2,
        heartbeat_threshold=10,
        encrypted=False,        # loopback only: skip CurveZMQ set-up and per-message crypto
        provider=LocalProvider(
            launcher=SingleNodeLauncher(),
            init_blocks=1,
            min_blocks=0,
            max_blocks=1,
            worker_init=str(machine.worker_init or ""),
        ),
    )
    return Config(
        executors=[executor],
        run_dir=run_dir,
        strategy_period=float(machine.strategy_period),
        usage_tracking=0,
        initialize_logging=True,
    )


def render(machine: MachineConfig, fs_name: str | None = None) -> Submission:
    """A dry run's submission: none, the workers are local processes."""
    return Submission("# machine=local: workers run as local processes "
                      "(Parsl LocalProvider); no batch script")


def fresh_config() -> Config:
    """A fresh local config with this project's defaults (Parsl's site-config convention)."""
    return config(MachineConfig(name="local", env_root="", max_workers=2,
                                strategy_period=0.5))


SCHEDULER = Scheduler(name="local", config=config, render=render)
