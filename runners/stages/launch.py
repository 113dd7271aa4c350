"""The MPI launcher command line for a machine (mpiexec, srun, aprun)."""

from __future__ import annotations

from runners.config.schema import MachineConfig

#: The MPI launchers a machine can name (``none``: no MPI, e.g. Kubernetes pods).
LAUNCHERS = ("mpiexec", "srun", "aprun", "none")


def launch_nodes(machine: MachineConfig, ranks: int) -> int:
    """The nodes ``ranks`` ranks are spread over: as few as ``ranks_per_node`` allows, at
    most the allocation's ``machine.nodes``."""
    return max(1, min(int(machine.nodes), -(-ranks // int(machine.ranks_per_node))))


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
    nodes = launch_nodes(machine, ranks)
    extra = [str(a).format(ranks_per_node=min(ranks, per_node), nodes=nodes, ranks=ranks)
             for a in machine.launcher_args]
    if machine.launcher == "mpiexec":
        exe = str(machine.mpiexec).replace("{env}", env_dir)
        return [exe, "-n", str(ranks), *extra]
    if machine.launcher == "srun":
        # A rank that cannot start (e.g. its node lacks the environment) ends the whole
        # step at once: without it, the other ranks wait in MPI start-up until the timeout.
        return ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", "-N", str(nodes), "-n",
                str(ranks), *extra]
    if machine.launcher == "aprun":
        return ["aprun", "-n", str(ranks), "-N", str(min(ranks, per_node)), *extra]
    raise ValueError(f"machine {machine.name!r} has no MPI launcher (launcher={machine.launcher})")


def per_node_prefix(machine: MachineConfig) -> list[str] | None:
    """The argv prefix that starts one task on each node of the allocation, or None when
    there is one node (the worker's own node is the only one: no launcher needed).

    Used to stage an environment onto a node-local filesystem and to warm it up on every
    node.  ``srun``: one task per node, no MPI; ``aprun``: ``-N 1``; ``mpiexec``: ``--ppn 1``
    (MPICH's Hydra and Cray PALS, as on Polaris).
    """
    nodes = int(machine.nodes)
    if nodes <= 1 or machine.launcher == "none":
        return None
    if machine.launcher == "srun":
        return ["srun", "--mpi=none", "--kill-on-bad-exit=1", "-N", str(nodes), "-n", str(nodes),
                "--ntasks-per-node=1"]
    if machine.launcher == "aprun":
        return ["aprun", "-n", str(nodes), "-N", "1"]
    return [str(machine.mpiexec), "-n", str(nodes), "--ppn", "1"]
