"""Parsl config for ``machine=local``: HighThroughputExecutor + LocalProvider on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SingleNodeLauncher
from parsl.providers import LocalProvider

from parsl_configs import ensure_python_on_path


def config_for(machine: Any, run_dir: str = "runinfo") -> Config:
    """Build the local Parsl config.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        Uses ``name``, ``max_workers``, ``worker_init`` and ``strategy_period``.
    run_dir : str
        Parsl's run directory.

    Returns
    -------
    parsl.config.Config
    """
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


def fresh_config() -> Config:
    """A fresh local config with this project's defaults (Parsl's site-config convention)."""
    from types import SimpleNamespace

    return config_for(SimpleNamespace(name="local", max_workers=2, worker_init="",
                                      strategy_period=0.5))
