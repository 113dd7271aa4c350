"""Slurm: ``SlurmProvider``; ``sbatch``/``squeue``/``scancel``; why a job died from
``scontrol show job`` (its walltime, preemption, a failed node)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
from typing import TYPE_CHECKING, Any

from parsl_configs.scheduler import Reply, Scheduler
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.config import Config


def config(machine: MachineConfig, run_dir: str, fs_name: str | None = None) -> Config:
    """One HTEX on a SlurmProvider made from the machine's generic fields."""
    from parsl.launchers import SimpleLauncher
    from parsl.providers import SlurmProvider

    from parsl_configs.batch import batch_config, directives, walltime

    provider = SlurmProvider(
        partition=machine.partition or None, account=machine.account or None,
        qos=machine.qos or None, constraint=machine.constraint or None,
        nodes_per_block=int(machine.nodes), init_blocks=1, min_blocks=0, max_blocks=1,
        walltime=walltime(machine.walltime_min),
        # A pilot job is not requeued by Slurm when a node fails: Parsl starts blocks, and
        # a lost node must end the run (failure.kind=node_lost), not wait in the queue.
        scheduler_options="\n".join(filter(None, [
            directives(machine, fs_name, SCHEDULER.directive_prefix), "#SBATCH --no-requeue"])),
        worker_init=str(machine.worker_init or ""), exclusive=bool(machine.exclusive),
        cores_per_node=int(machine.cores_per_node) if not machine.exclusive else None,
        mem_per_node=int(machine.mem_gb) if machine.mem_gb else None,
        gpus_per_node=int(machine.gpus_per_node) or None,
        cmd_timeout=int(machine.cmd_timeout), launcher=SimpleLauncher())
    return batch_config(machine, run_dir, provider)


def reply(command: str) -> Reply:
    """What Slurm answers a dry run's ``sbatch``."""
    if command.startswith("sbatch"):
        return 0, "Submitted batch job 1000001\n", ""
    return 1, "", "dry run: not executed"


def past_end(scontrol_line: str) -> bool:
    """Whether a running job is past its ``EndTime`` (Slurm prints local time)."""
    m = re.search(r"JobState=(RUNNING|COMPLETING)\b.*?EndTime=(\S+)", scontrol_line)
    if m is None:
        m = re.search(r"EndTime=(\S+).*?JobState=(RUNNING|COMPLETING)\b", scontrol_line)
        end = m.group(1) if m else ""
    else:
        end = m.group(2)
    try:
        return bool(end) and dt.datetime.fromisoformat(end) <= dt.datetime.now()
    except ValueError:       # "Unknown", "NONE"
        return False


def job_verdict(job_id: str, wait_s: float = 10.0) -> tuple[str, str] | None:
    """Ask Slurm how a job ended (``scontrol show job``), waiting while it is completing.

    Slurm enforces time limits on a periodic check: past its ``EndTime`` a job refuses
    new steps while ``scontrol`` may still say RUNNING for a while, then shows
    ``JobState=COMPLETING Reason=TimeLimit``, then ``JobState=TIMEOUT``; all of these count.

    Returns
    -------
    (kind, reason) or None
        ``walltime`` for JobState=TIMEOUT, ``node_lost`` for NODE_FAIL (naming the node
        and Slurm's reason), ``scheduler`` for PREEMPTED /
        BOOT_FAIL / DEADLINE; None while running, when it ended otherwise, or when Slurm
        no longer knows the job.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                                 text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        state = re.search(r"JobState=(\S+)", out)
        if state is None:
            return None
        if state.group(1) not in ("COMPLETING", "RUNNING") or time.monotonic() > deadline:
            break
        if re.search(r"Reason=TimeLimit\b", out) or past_end(out):
            break       # timed out, though Slurm may not have processed it yet
        time.sleep(0.5)
    if state.group(1) == "TIMEOUT" or re.search(r"Reason=TimeLimit\b", out) or past_end(out):
        said = " ".join(re.findall(r"(?:JobState|Reason|TimeLimit|EndTime)=\S+", out))
        return "walltime", f"batch job {job_id} exceeded its walltime (Slurm: {said})"
    if state.group(1) == "NODE_FAIL":
        return "node_lost", f"batch job {job_id} lost a node: {lost_nodes(out)} (Slurm: " \
            f"JobState=NODE_FAIL)"
    if state.group(1) in ("PREEMPTED", "BOOT_FAIL", "DEADLINE"):
        return "scheduler", f"batch job {job_id} ended {state.group(1)} (Slurm)"
    return None


def lost_nodes(scontrol_line: str) -> str:
    """The job's nodes that Slurm has down, drained or not responding, with its reasons
    (``node2 down: <reason>``); the job's node list when none is (any more)."""
    nodes = re.search(r"\bNodeList=(\S+)", scontrol_line)
    if nodes is None or nodes.group(1) in ("(null)", ""):
        return "unknown node"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-n", nodes.group(1), "-o", "%N|%T|%E"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    bad = []
    for line in dict.fromkeys(out.splitlines()):
        name, _, rest = line.partition("|")
        state, _, reason = rest.partition("|")
        if state.startswith(("down", "drain", "fail")) or state.endswith("*"):
            bad.append(f"{name} {state}" + (f": {reason}" if reason and reason != "none" else ""))
    return ", ".join(bad) or f"one of {nodes.group(1)}"


def diagnose(executor: Any) -> tuple[str, str] | None:
    """Slurm's own verdict on the executor's batch jobs, if one of them died."""
    for job_id in list(getattr(getattr(executor, "provider", None), "resources", {}) or {}):
        found = job_verdict(str(job_id))
        if found:
            return found
    return None


def check(machine: MachineConfig) -> str | None:
    """Slurm's controller answers ``sinfo``, and the partition has ``machine.nodes`` nodes.

    Returns
    -------
    str or None
        One line saying what is wrong, or None.
    """
    env = {**os.environ, **{str(k): str(v) for k, v in machine.env.items()}}
    partition = str(machine.partition or "")
    key = (str(machine.name), partition, int(machine.nodes), env.get("SLURM_CONF", ""))
    if key in _CHECKED:         # a sweep checks each of its jobs: ask Slurm once
        return _CHECKED[key]
    _CHECKED[key] = found = _ask_sinfo(machine, partition, env)
    return found


#: Answers of :func:`check` in this process (a sweep's jobs share them).
_CHECKED: dict[tuple[str, str, int, str], str | None] = {}


def _ask_sinfo(machine: MachineConfig, partition: str, env: dict[str, str]) -> str | None:
    argv = ["sinfo", "-h", "-o", "%D %T", *(["-p", partition] if partition else [])]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=int(machine.cmd_timeout))
    except subprocess.TimeoutExpired:
        return (f"machine={machine.name}: Slurm's controller did not answer sinfo within "
                f"{machine.cmd_timeout} s; is slurmctld running (cluster/slurm/start.sh for "
                "the local cluster)?")
    if out.returncode != 0:
        said = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return (f"machine={machine.name}: Slurm is installed but its controller cannot be "
                f"reached (sinfo: {said}); start it (cluster/slurm/start.sh for the local "
                "cluster) or point SLURM_CONF at a running one")
    counts: dict[str, int] = {}
    for line in out.stdout.splitlines():
        n, _, state = line.partition(" ")
        if n.isdigit():
            counts[state] = counts.get(state, 0) + int(n)
    total = sum(counts.values())
    if int(machine.nodes) > total:
        where = f"partition {partition}" if partition else "the cluster"
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return (f"machine.nodes={machine.nodes} exceeds {where}: sinfo reports {total} "
                f"node(s) ({states or 'none'}); lower machine.nodes")
    return None


SCHEDULER = Scheduler(name="slurm", config=config, commands=("sbatch", "squeue", "scancel"),
                      directive_prefix="#SBATCH", job_id_var="SLURM_JOB_ID", reply=reply,
                      diagnose=diagnose, check=check)
