"""PBS Pro (e.g. ALCF Polaris): ``PBSProProvider``; ``qsub``/``qstat``/``qdel``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parsl_configs.scheduler import Reply, Scheduler
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.config import Config


def config(machine: MachineConfig, run_dir: str, fs_name: str | None = None) -> Config:
    """One HTEX on a PBSProProvider made from the machine's generic fields."""
    from parsl.launchers import SimpleLauncher
    from parsl.providers import PBSProProvider

    from parsl_configs.batch import batch_config, directives, walltime

    provider = PBSProProvider(
        account=machine.account or None, queue=machine.queue or None,
        scheduler_options=directives(machine, fs_name, SCHEDULER.directive_prefix),
        select_options=str(machine.extra.get("select_options", "")),
        worker_init=str(machine.worker_init or ""), nodes_per_block=int(machine.nodes),
        cpus_per_node=int(machine.cores_per_node), init_blocks=1, min_blocks=0, max_blocks=1,
        walltime=walltime(machine.walltime_min), cmd_timeout=int(machine.cmd_timeout),
        launcher=SimpleLauncher())
    return batch_config(machine, run_dir, provider)


def reply(command: str) -> Reply:
    """What PBS Pro answers a dry run's ``qsub``."""
    if command.startswith("qsub"):
        return 0, "1000001.polaris-pbs-01\n", ""
    return 1, "", "dry run: not executed"


SCHEDULER = Scheduler(name="pbspro", config=config, commands=("qsub", "qstat", "qdel"),
                      directive_prefix="#PBS", job_id_var="PBS_JOBID", reply=reply)
