"""The MPI launcher command line for a machine (mpiexec, srun, aprun)."""

from __future__ import annotations

from runners.config.schema import MachineConfig

#: The MPI launchers a machine can name (``none``: no MPI, e.g. Kubernetes pods).
LAUNCHERS = ("mpiexec", "srun", "aprun", "none")


def launch_prefix(machine: MachineConfig, ranks: int, env_dir: str) -> list[str]:
    """The argv prefix that starts ``ranks`` MPI ranks on ``machine``.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        Uses ``launcher``, ``launcher_args``, ``nodes`` and ``ranks_per_node``.
    ranks : int
        Total number of ranks.
    env_dir : str
        The benchmark environment; ``{env}`` in ``machine.mpiexec`` is replaced by it
        (locally the ``mpich`` wheel's ``{env}/bin/mpiexec``, matching the MPI library
        mpi4py loads).

    Returns
    -------
    list of str
    """
    per_node = int(machine.ranks_per_node)
    nodes = max(1, min(int(machine.nodes), -(-ranks // per_node)))
    extra = [str(a).format(ranks_per_node=min(ranks, per_node), nodes=nodes, ranks=ranks)
             for a in machine.launcher_args]
    if machine.launcher == "mpiexec":
        exe = str(machine.mpiexec).replace("{env}", env_dir)
        return [exe, "-n", str(ranks), *extra]
    if machine.launcher == "srun":
        return ["srun", "--mpi=pmi2", "-N", str(nodes), "-n", str(ranks), *extra]
    if machine.launcher == "aprun":
        return ["aprun", "-n", str(ranks), "-N", str(min(ranks, per_node)), *extra]
    raise ValueError(f"machine {machine.name!r} has no MPI launcher (launcher={machine.launcher})")
