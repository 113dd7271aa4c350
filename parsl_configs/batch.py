"""Parsl configs for batch schedulers: Slurm, PBS Pro and Cobalt.

The worker pool runs once per block on the batch job's lead node (``SimpleLauncher``);
each benchmark trial then starts its MPI ranks across the allocation with the machine's
launcher (``srun``, ``mpiexec``, ``aprun``), the pattern Parsl recommends for MPI apps.
"""

from __future__ import annotations

from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers.base import ExecutionProvider

from parsl_configs import ensure_python_on_path


def walltime(minutes: int) -> str:
    """``HH:MM:SS`` from whole minutes."""
    return f"{int(minutes) // 60:02d}:{int(minutes) % 60:02d}:00"


def directives(machine: Any, fs_name: str | None, prefix: str) -> str:
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
        lines += [str(d) for d in machine.filesystems[fs_name].directives]
    return "\n".join(ln if ln.startswith("#") else f"{prefix} {ln}" for ln in lines)


def slurm_provider(machine: Any, fs_name: str | None = None) -> ExecutionProvider:
    """A SlurmProvider from generic machine fields."""
    from parsl.providers import SlurmProvider

    return SlurmProvider(
        partition=machine.partition or None, account=machine.account or None,
        qos=machine.qos or None, constraint=machine.constraint or None,
        nodes_per_block=int(machine.nodes), init_blocks=1, min_blocks=0, max_blocks=1,
        walltime=walltime(machine.walltime_min),
        scheduler_options=directives(machine, fs_name, "#SBATCH"),
        worker_init=str(machine.worker_init or ""), exclusive=bool(machine.exclusive),
        cores_per_node=int(machine.cores_per_node) if not machine.exclusive else None,
        mem_per_node=int(machine.mem_gb) if machine.mem_gb else None,
        gpus_per_node=int(machine.gpus_per_node) or None,
        cmd_timeout=int(machine.cmd_timeout), launcher=SimpleLauncher())


def pbspro_provider(machine: Any, fs_name: str | None = None) -> ExecutionProvider:
    """A PBSProProvider (e.g. Polaris) from generic machine fields."""
    from parsl.providers import PBSProProvider

    return PBSProProvider(
        account=machine.account or None, queue=machine.queue or None,
        scheduler_options=directives(machine, fs_name, "#PBS"),
        select_options=str(machine.extra.get("select_options", "")),
        worker_init=str(machine.worker_init or ""), nodes_per_block=int(machine.nodes),
        cpus_per_node=int(machine.cores_per_node), init_blocks=1, min_blocks=0, max_blocks=1,
        walltime=walltime(machine.walltime_min), cmd_timeout=int(machine.cmd_timeout),
        launcher=SimpleLauncher())


def cobalt_provider(machine: Any, fs_name: str | None = None) -> ExecutionProvider:
    """The project's CobaltProvider (Theta) from generic machine fields."""
    from parsl_configs.cobalt import CobaltProvider

    return CobaltProvider(
        account=machine.account or None, queue=machine.queue or None,
        scheduler_options=directives(machine, fs_name, "#COBALT"),
        worker_init=str(machine.worker_init or ""), nodes_per_block=int(machine.nodes),
        init_blocks=1, min_blocks=0, max_blocks=1, walltime=walltime(machine.walltime_min),
        attrs=machine.extra.get("attrs") or None, launcher=SimpleLauncher(),
        cmd_timeout=int(machine.cmd_timeout))


PROVIDERS = {"slurm": slurm_provider, "pbspro": pbspro_provider, "cobalt": cobalt_provider}


def config_for(machine: Any, run_dir: str = "runinfo", fs_name: str | None = None) -> Config:
    """The Parsl config of a batch machine: one HTEX on the machine's provider.

    Parameters
    ----------
    machine : MachineConfig
        The machine (``scheduler`` picks the provider).
    run_dir : str
        Parsl's run directory.
    fs_name : str, optional
        The chosen filesystem, for its job directives.
    """
    ensure_python_on_path()
    provider = PROVIDERS[str(machine.scheduler)](machine, fs_name)
    executor = HighThroughputExecutor(
        label=str(machine.name), address=str(machine.address) or None,
        max_workers_per_node=int(machine.max_workers), heartbeat_period=5,
        heartbeat_threshold=30, provider=provider)
    return Config(executors=[executor], run_dir=run_dir,
                  strategy_period=float(machine.strategy_period), usage_tracking=0,
                  initialize_logging=True)
