"""Render what a machine would submit (batch script or pod spec) without submitting it.

The real provider builds the script: its scheduler calls (``sbatch``, ``qsub``, ``sacct``
…) are recorded instead of run, and answered by the scheduler record's ``reply``, so the
text is exactly what a real run submits.  A scheduler without batch scripts (local
processes, Kubernetes pods) renders its own (the record's ``render``).  Used by
``dry_run=true`` and the golden-file tests.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from parsl_configs import build
from parsl_configs.scheduler import Submission, scheduler
from runners.config.schema import MachineConfig

JOB_NAME = "bench.block-0"


def render(machine: MachineConfig, fs_name: str | None = None) -> Submission:
    """Render the submission of one block for ``machine``.

    Parameters
    ----------
    machine : MachineConfig
        Any machine.
    fs_name : str, optional
        The chosen filesystem (its job directives go into the script).

    Returns
    -------
    Submission
        The script with its directory shown as ``<run_dir>/submit_scripts`` and the job's
        timestamp suffix as ``<time>``.
    """
    record = scheduler(str(machine.scheduler))
    if record.render is not None:
        return record.render(machine, fs_name)
    reply = record.reply or (lambda command: (1, "", "dry run: not executed"))
    commands: list[str] = []

    def recorded(command: str, timeout: int | None = None) -> tuple[int, str, str]:
        commands.append(command)
        return reply(command)

    with tempfile.TemporaryDirectory(prefix="bench-dry-") as tmp:
        config = build(machine, f"{tmp}/runinfo", fs_name)
        executor: Any = config.executors[0]
        provider: Any = executor.provider
        provider.script_dir = tmp
        command = str(getattr(executor, "launch_cmd", "") or "process_worker_pool.py ...")
        with mock.patch.object(provider, "execute_wait", recorded):
            provider.submit(command, 1, JOB_NAME)
        scripts = sorted(p for p in Path(tmp).iterdir() if p.is_file() and JOB_NAME in p.name
                         and not p.name.endswith((".stdout", ".stderr")))
        text = scripts[0].read_text()
        return Submission(_tidy(text, tmp), [_tidy(c, tmp) for c in commands])


def _tidy(text: str, tmp: str) -> str:
    text = text.replace(tmp, "<run_dir>/submit_scripts")
    return re.sub(r"\.\d{9,}\.\d+", ".<time>", text)
