"""What batch schedulers share: walltime words, directives, and the HighThroughputExecutor
on a batch provider.

The worker pool runs once per block on the batch job's lead node (``SimpleLauncher``);
each benchmark trial then starts its MPI ranks across the allocation with the machine's
launcher (``srun``, ``mpiexec``, ``aprun``), the pattern Parsl recommends for MPI apps.
"""

from __future__ import annotations

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers.base import ExecutionProvider

from parsl_configs.python_path import ensure_python_on_path
from runners.config.schema import MachineConfig
from runners.stages.launch import per_node_prefix


def walltime(minutes: int) -> str:
    """``HH:MM:SS`` from whole minutes."""
    return f"{int(minutes) // 60:02d}:{int(minutes) % 60:02d}:00"


def directives(machine: MachineConfig, fs_name: str | None, prefix: str) -> str:
    """The machine's scheduler options plus the chosen filesystem's job directives.

    Parameters
    ----------
    machine : MachineConfig
        Uses ``scheduler_options`` and ``filesystems[fs_name].directives``.
    fs_name : str or None
        The chosen filesystem (e.g. ``datawarp`` adds ``#DW jobdw …``).
    prefix : str
        The scheduler's directive prefix, added to options given without it.
    """
    lines = [ln.strip() for ln in str(machine.scheduler_options or "").splitlines() if ln.strip()]
    if fs_name and fs_name in machine.filesystems:
        fs = machine.filesystems[fs_name]
        lines += [str(d) for d in fs.directives]
        per_node = per_node_prefix(machine) if fs.scope == "node" else None
        if per_node:      # a note for whoever reads the script: the first task stages
            lines.append(f"# bench: fs={fs_name} is node-local: the environment is staged "
                         f"on each of the {machine.nodes} nodes, in parallel, by "
                         f"'{' '.join(per_node)} python -m runners.stages.node_copy'")
    return "\n".join(ln if ln.startswith("#") else f"{prefix} {ln}" for ln in lines)


def batch_config(machine: MachineConfig, run_dir: str, provider: ExecutionProvider) -> Config:
    """The Parsl config of a batch machine: one HTEX on ``provider``.

    Parameters
    ----------
    machine : MachineConfig
        Uses ``name``, ``address``, ``max_workers`` and ``strategy_period``.
    run_dir : str
        Parsl's run directory.
    provider : ExecutionProvider
        The scheduler's provider, made from the machine.
    """
    ensure_python_on_path()
    executor = HighThroughputExecutor(
        label=str(machine.name), address=str(machine.address) or None,
        max_workers_per_node=int(machine.max_workers), heartbeat_period=5,
        heartbeat_threshold=30, provider=provider)
    return Config(executors=[executor], run_dir=run_dir,
                  strategy_period=float(machine.strategy_period), usage_tracking=0,
                  initialize_logging=True)
