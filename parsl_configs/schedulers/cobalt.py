"""Cobalt execution provider for replaying ALCF Theta (Cray XC40, KNL) campaigns.

Parsl removed ``CobaltProvider`` in 2024.11.04; this re-creates it for the current
provider contract.  The scheduler calls follow the old provider: ``qsub -n <nodes>
[-q <queue>] -t <minutes> [-A <account>] <script>`` (job id on stdout), ``qstat -u
$USER`` and ``qdel <ids>``.  The script also carries the request as ``#COBALT`` lines so
it can be resubmitted by hand.  Theta's qsub read directives only from the lines right
after ``#!``, each starting with ``#COBALT `` and split on whitespace; the first other
line, even a blank one, ends the block.  Directives go before the command-line options
(the command line wins), but a second ``--attrs`` is rejected outright.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from parsl.jobs.states import JobState, JobStatus
from parsl.launchers import AprunLauncher
from parsl.launchers.base import Launcher
from parsl.providers.cluster_provider import ClusterProvider
from parsl.providers.errors import SubmitException
from parsl.utils import RepresentationMixin, wtime_to_minutes

from parsl_configs.scheduler import Reply, Scheduler
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.config import Config

logger = logging.getLogger(__name__)

#: Submit-script template; ``cobalt_directives`` is one unbroken block of ``#COBALT``
#: lines (the provider's, then the user's ``scheduler_options``).
template_string = """#!/bin/bash -el
${cobalt_directives}

${worker_init}

echo "Starting Cobalt job script"
echo "----Cobalt partition: $${COBALT_PARTNAME:-} ($${COBALT_JOBSIZE:-?} nodes)----"
[[ -n "$${COBALT_NODEFILE:-}" ]] && cat "$$COBALT_NODEFILE"
echo "--------------------------"

export JOBNAME="${jobname}"

${user_script}

echo "End of Cobalt job"
"""

#: Cobalt job states (``cqm`` ``Job.state``) to Parsl states.  ``starting`` (nodes may
#: be rebooting into the requested mcdram/numa mode) and ``exiting`` follow the old
#: provider; held jobs count as pending so the scaling strategy does not over-submit.
translate_table: dict[str, JobState] = {
    "queued": JobState.PENDING, "starting": JobState.PENDING,
    "user_hold": JobState.PENDING, "admin_hold": JobState.PENDING,
    "dep_hold": JobState.PENDING, "maxrun_hold": JobState.PENDING,
    "preempted": JobState.PENDING, "dep_fail": JobState.HELD,
    "running": JobState.RUNNING, "preempting": JobState.RUNNING,
    "exiting": JobState.COMPLETED, "killing": JobState.COMPLETED, "done": JobState.COMPLETED,
}

#: Return code :meth:`CobaltProvider.execute_wait` reports for a timed-out command.
TIMEOUT_RETCODE = 124


class CobaltProvider(ClusterProvider, RepresentationMixin):
    """Cobalt execution provider (qsub / qstat / qdel), as used on ALCF Theta.

    Parameters
    ----------
    account : str, optional
        Project charged for the job (``-A``).
    queue : str, optional
        Queue (``-q``), e.g. ``debug-cache-quad``.
    scheduler_options : str
        Extra ``#COBALT ...`` lines appended to the directive block; blank lines are
        dropped because they would end Cobalt's directive parsing.
    worker_init : str
        Commands run before the launcher, e.g. ``module load miniconda-3``.
    nodes_per_block : int
        Nodes per block (``-n``).
    init_blocks, min_blocks, max_blocks : int
        Block scaling limits.
    parallelism : float
        Ratio of provisioned task slots to active tasks.
    walltime : str or int
        ``HH:MM:SS`` or minutes; sent to Cobalt as whole minutes.
    attrs : str or Mapping[str, str], optional
        ``--attrs`` value, e.g. ``"mcdram=cache:numa=quad"`` or a dict.
    launcher : Launcher, optional
        Wraps the worker command; :class:`~parsl.launchers.AprunLauncher` by default.
    cmd_timeout : int
        Seconds allowed per qsub/qstat/qdel call; on expiry the command's process
        group is killed and the call counts as failed.
    """

    def __init__(self, account: str | None = None, queue: str | None = None,
                 scheduler_options: str = "", worker_init: str = "",
                 nodes_per_block: int = 1, init_blocks: int = 0, min_blocks: int = 0,
                 max_blocks: int = 1, parallelism: float = 1,
                 walltime: str | int = "00:10:00",
                 attrs: str | Mapping[str, str] | None = None,
                 launcher: Launcher | None = None, cmd_timeout: int = 10) -> None:
        super().__init__("cobalt", nodes_per_block, init_blocks, min_blocks, max_blocks,
                         parallelism, walltime, launcher or AprunLauncher(),
                         cmd_timeout=cmd_timeout)
        self.account = account
        self.queue = queue
        self.scheduler_options = scheduler_options
        self.worker_init = worker_init
        self.attrs = attrs
        if attrs and "--attrs" in scheduler_options:
            raise ValueError("attrs is set and scheduler_options holds --attrs too; Cobalt "
                             "rejects a second --attrs, so merge them into attrs")
        self.template_string = template_string

    @property
    def walltime_minutes(self) -> int:
        """int: Walltime in whole minutes, as passed to ``-t``."""
        text = str(self.walltime).strip()
        if text.count(":") == 2:
            return wtime_to_minutes(text)
        if text.isdigit():
            return int(text)
        raise ValueError(f"walltime {self.walltime!r} is neither HH:MM:SS nor minutes")

    def cobalt_directives(self, output_prefix: str) -> str:
        """Return the ``#COBALT`` block for the script header.

        Parameters
        ----------
        output_prefix : str
            ``-O`` value; Cobalt writes ``<prefix>.output``, ``.error``, ``.cobaltlog``.
            Must be free of whitespace (directives are whitespace-split).

        Returns
        -------
        str
            Directive lines without blank lines, the provider's options first.
        """
        options = [f"-t {self.walltime_minutes}", f"-n {self.nodes_per_block}"]
        options += [f"-q {self.queue}"] if self.queue else []
        options += [f"-A {self.account}"] if self.account else []
        attrs = self.attrs or ""
        if not isinstance(attrs, str):
            attrs = ":".join(f"{key}={value}" for key, value in attrs.items())
        options += [f"--attrs {attrs.strip()}"] if attrs.strip() else []
        lines = [f"#COBALT {option}" for option in options + [f"-O {output_prefix}"]]
        for line in filter(str.strip, self.scheduler_options.splitlines()):
            if not line.startswith(("#COBALT ", "# bench:")):      # our notes come last
                logger.warning("scheduler_options line %r ends Cobalt's directive block", line)
            lines.append(line.rstrip())
        return "\n".join(lines)

    def execute_wait(self, cmd: str, timeout: int | None = None) -> tuple[int, str, str]:
        """Run ``cmd`` in a shell for at most ``timeout`` (default ``cmd_timeout``) seconds.

        Unlike :func:`parsl.utils.execute_wait`, a timed-out command's process group is
        killed and the call returns ``(TIMEOUT_RETCODE, stdout, stderr + note)``.
        """
        limit = self.cmd_timeout if timeout is None else timeout
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=limit)
            retcode = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            retcode = TIMEOUT_RETCODE
            err += f"\ncommand {cmd!r} timed out after {limit} s (cmd_timeout)".encode()
            logger.warning("%r timed out after %s s", cmd, limit)
        return retcode, out.decode(errors="replace"), err.decode(errors="replace")

    def _status(self) -> None:
        """Refresh ``self.resources`` from ``qstat -u $USER``; keep states if it fails."""
        retcode, stdout, stderr = self.execute_wait("qstat -u $USER")
        if retcode != 0:
            logger.warning("qstat failed (rc=%s): %s", retcode, stderr.strip())
            return
        missing = set(self.resources)
        state_col = 4  # JobID User WallTime Nodes State Location, unless QSTAT_HEADER is set
        for parts in (line.split() for line in stdout.splitlines()):
            if not parts or parts[0][0] in "=-":
                continue
            if parts[0].upper() == "JOBID":
                header = [part.upper() for part in parts]
                state_col = header.index("STATE") if "STATE" in header else state_col
            elif parts[0] in self.resources and len(parts) > state_col:
                self._set_state(parts[0], translate_table.get(parts[state_col].lower(),
                                                              JobState.UNKNOWN))
                missing.discard(parts[0])
        for job_id in missing:  # finished jobs drop out of qstat
            self._set_state(job_id, JobState.COMPLETED)

    def _set_state(self, job_id: object, state: JobState) -> None:
        record = self.resources[job_id]
        record["status"] = JobStatus(state, stdout_path=record["job_stdout_path"],
                                     stderr_path=record["job_stderr_path"])

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.cobalt") -> str:
        """Write the submit script into ``script_dir`` and ``qsub`` it.

        Parameters
        ----------
        command : str
            Command to run in the block, wrapped by the launcher.
        tasks_per_node : int
            Command invocations per node.
        job_name : str
            Name prefix; ``parsl.<job_name>.<time>`` as in the old provider.

        Returns
        -------
        str
            The Cobalt job id.

        Raises
        ------
        SubmitException
            If qsub fails, times out or prints no numeric job id.
        """
        assert self.script_dir, "Expected script_dir to be set"
        job_name = f"parsl.{job_name}.{time.time()}"
        prefix = os.path.abspath(os.path.join(self.script_dir, job_name))
        script_path = f"{prefix}.submit"
        job_config = {
            "cobalt_directives": self.cobalt_directives(prefix),
            "worker_init": self.worker_init,
            "user_script": self.launcher(command, tasks_per_node, self.nodes_per_block,
                                         self.script_dir),
        }
        self._write_submit_script(self.template_string, script_path, job_name, job_config)
        os.chmod(script_path, 0o700)  # Cobalt refuses scripts without the execute bit

        launch_cmd = " ".join(["qsub", f"-n {self.nodes_per_block}",
                               *([f"-q {self.queue}"] if self.queue else []),
                               f"-t {self.walltime_minutes}",
                               *([f"-A {self.account}"] if self.account else []), script_path])
        retcode, stdout, stderr = self.execute_wait(launch_cmd)
        lines = stdout.split()
        if retcode != 0 or not lines or not lines[-1].isdigit():
            message = f"Submit command '{launch_cmd}' failed (rc={retcode}): {stderr.strip()}"
            logger.error("%s\nSTDOUT: %s", message, stdout.strip())
            raise SubmitException(job_name, message, stdout=stdout, stderr=stderr,
                                  retcode=retcode)
        job_id = lines[-1]
        self.resources[job_id] = {"job_id": job_id, "job_stdout_path": f"{prefix}.output",
                                  "job_stderr_path": f"{prefix}.error"}
        self._set_state(job_id, JobState.PENDING)
        return job_id

    def cancel(self, job_ids: Sequence[Any]) -> list[bool]:
        """Cancel jobs with one ``qdel <ids>``; returns all True, or all False on failure."""
        if not job_ids:
            return []
        retcode, _, stderr = self.execute_wait("qdel " + " ".join(map(str, job_ids)))
        if retcode != 0:
            logger.warning("qdel failed (rc=%s): %s", retcode, stderr.strip())
            return [False] * len(job_ids)
        for job_id in job_ids:
            if job_id in self.resources:
                self._set_state(job_id, JobState.COMPLETED)  # as the old provider did
        return [True] * len(job_ids)

    @property
    def status_polling_interval(self) -> int:
        """int: Seconds between :meth:`status` calls."""
        return 60


def config(machine: MachineConfig, run_dir: str, fs_name: str | None = None) -> Config:
    """One HTEX on a :class:`CobaltProvider` made from the machine's generic fields."""
    from parsl.launchers import SimpleLauncher

    from parsl_configs.batch import batch_config, directives, walltime

    provider = CobaltProvider(
        account=machine.account or None, queue=machine.queue or None,
        scheduler_options=directives(machine, fs_name, SCHEDULER.directive_prefix),
        worker_init=str(machine.worker_init or ""), nodes_per_block=int(machine.nodes),
        init_blocks=1, min_blocks=0, max_blocks=1, walltime=walltime(machine.walltime_min),
        attrs=machine.extra.get("attrs") or None, launcher=SimpleLauncher(),
        cmd_timeout=int(machine.cmd_timeout))
    return batch_config(machine, run_dir, provider)


def reply(command: str) -> Reply:
    """What Cobalt answers a dry run's ``qsub``: the job id alone."""
    if command.startswith("qsub"):
        return 0, "1000001\n", ""
    return 1, "", "dry run: not executed"


SCHEDULER = Scheduler(name="cobalt", config=config, commands=("qsub", "qstat", "qdel"),
                      directive_prefix="#COBALT", job_id_var="COBALT_JOBID", reply=reply)
