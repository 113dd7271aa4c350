"""Render what a machine would submit (batch script or pod spec) without submitting it.

The real provider builds the script: its scheduler calls (``sbatch``, ``qsub``, ``sacct``
…) are recorded instead of run, and answered as the scheduler would, so the text is
exactly what a real run submits.  Used by ``dry_run=true`` and the golden-file tests.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

JOB_NAME = "bench.block-0"


@dataclass
class Submission:
    """A rendered submission: the script (or pod spec) and the commands that would run."""

    text: str
    commands: list[str] = field(default_factory=list)


def _answer(cmd: str) -> tuple[int, str, str]:
    if cmd.startswith("sbatch"):
        return 0, "Submitted batch job 1000001\n", ""
    if cmd.startswith("qsub"):
        return 0, "1000001.polaris-pbs-01\n" if "-n " not in cmd else "1000001\n", ""
    return 1, "", "dry run: not executed"


@contextlib.contextmanager
def _recorded(commands: list[str]) -> Iterator[None]:
    """Record every scheduler command providers try to run; run none of them."""
    from parsl.providers.cluster_provider import ClusterProvider

    from parsl_configs.cobalt import CobaltProvider

    def fake(self: Any, cmd: str, timeout: int | None = None) -> tuple[int, str, str]:
        commands.append(cmd)
        return _answer(cmd)

    with mock.patch.object(ClusterProvider, "execute_wait", fake), \
            mock.patch.object(CobaltProvider, "execute_wait", fake):
        yield


def render(machine: Any, fs_name: str | None = None) -> Submission:
    """Render the submission of one block for ``machine``.

    Parameters
    ----------
    machine : MachineConfig
        Any machine; ``local`` has no batch script (its workers are local processes).
    fs_name : str, optional
        The chosen filesystem (its job directives go into the script).

    Returns
    -------
    Submission
        The script with its directory shown as ``<run_dir>/submit_scripts`` and the job's
        timestamp suffix as ``<time>``.
    """
    from parsl_configs import build

    scheduler = str(machine.scheduler)
    if scheduler == "local":
        return Submission("# machine=local: workers run as local processes "
                          "(Parsl LocalProvider); no batch script")
    if scheduler == "kubernetes":
        from parsl_configs import kubernetes

        text = kubernetes.render_submission(machine, "<worker command>", JOB_NAME)
        m = re.search(r"parsl-job-id: (\S+)", text)
        return Submission(text.replace(m.group(1), "<job-id>") if m else text)
    commands: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-dry-") as tmp, _recorded(commands):
        config = build(machine, f"{tmp}/runinfo", fs_name)
        executor: Any = config.executors[0]
        provider: Any = executor.provider
        provider.script_dir = tmp
        command = str(getattr(executor, "launch_cmd", "") or "process_worker_pool.py ...")
        provider.submit(command, 1, JOB_NAME)
        scripts = [p for p in Path(tmp).iterdir()
                   if p.is_file() and not p.name.endswith((".stdout", ".stderr"))
                   and p.name.startswith("parsl." if scheduler == "cobalt" else JOB_NAME)]
        text = scripts[0].read_text()
        commands = [_tidy(c, tmp) for c in commands]
        return Submission(_tidy(text, tmp), commands)


def _tidy(text: str, tmp: str) -> str:
    text = text.replace(tmp, "<run_dir>/submit_scripts")
    return re.sub(r"\.\d{9,}\.\d+", ".<time>", text)
