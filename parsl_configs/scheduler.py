"""One record per scheduler: everything the project knows about it, asked by the Parsl
config builder, the validation, the dry run and the failure diagnosis.

A scheduler is a module of ``parsl_configs/schedulers/`` named after it, setting
``SCHEDULER = Scheduler(...)``; one from outside the repository registers through the
entry-point group :data:`ENTRY_POINTS` (``[project.entry-points."hpc_bench.schedulers"]
lsf = "mysite.lsf:SCHEDULER"``).  A machine YAML names it in ``scheduler:``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parsl.config import Config

ENTRY_POINTS = "hpc_bench.schedulers"
#: ``(exit code, stdout, stderr)`` of a scheduler command.
Reply = tuple[int, str, str]


@dataclass
class Submission:
    """What a dry run shows of one block: the script (or pod spec) and the scheduler
    commands that would run."""

    text: str
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scheduler:
    """What the project knows about one scheduler.

    Parameters
    ----------
    name : str
        The word a machine YAML gives in ``scheduler:``.
    config : callable
        ``config(machine, run_dir, fs_name)``: the Parsl Config, one HighThroughputExecutor
        labelled with the machine's name on this scheduler's provider.
    commands : tuple of str
        Commands a real run needs on the submitting host (checked before anything runs).
    python_modules : tuple of str
        Python packages a real run needs (e.g. ``kubernetes``).
    directive_prefix : str
        What starts a batch directive (``#SBATCH``); generic options get it added.
    job_id_var : str
        The variable holding the batch job's id on its nodes (tag ``scheduler.job_id``).
    reply : callable, optional
        ``reply(command)``: what the scheduler would answer, for a dry run that renders the
        real provider's submission without submitting it.
    render : callable, optional
        ``render(machine, fs_name)``: a dry run's submission made another way (local
        processes have none; Kubernetes has a pod spec).
    diagnose : callable, optional
        ``diagnose(executor)``: ``(failure kind, reason)`` when the scheduler says why a
        block died (e.g. Slurm's walltime), else None.
    check : callable, optional
        ``check(machine)``: one line saying why a real run cannot be submitted (the
        scheduler does not answer; more nodes asked for than there are), else None.  Run
        before any run is opened.
    """

    name: str
    config: Callable[[Any, str, str | None], Config]
    commands: tuple[str, ...] = ()
    python_modules: tuple[str, ...] = ()
    directive_prefix: str = ""
    job_id_var: str = ""
    reply: Callable[[str], Reply] | None = None
    render: Callable[[Any, str | None], Submission] | None = None
    diagnose: Callable[[Any], tuple[str, str] | None] | None = None
    check: Callable[[Any], str | None] | None = None


@cache
def _builtin() -> tuple[str, ...]:
    from parsl_configs import schedulers

    return tuple(sorted(m.name for m in pkgutil.iter_modules(schedulers.__path__)
                        if not m.name.startswith("_")))


@cache
def _plugins() -> dict[str, metadata.EntryPoint]:
    return {e.name: e for e in metadata.entry_points(group=ENTRY_POINTS)
            if e.name not in _builtin()}


def names() -> list[str]:
    """Every scheduler a machine can name, sorted."""
    return sorted({*_builtin(), *_plugins()})


def job_id_vars(name: str) -> tuple[str, ...]:
    """Where a batch job's id may be on a node: scheduler ``name``'s variable first, then
    every other scheduler's (a ``machine=local`` run inside an allocation records it too)."""
    found = [scheduler(name).job_id_var, *(scheduler(n).job_id_var for n in names())]
    return tuple(v for v in dict.fromkeys(found) if v)


@cache
def scheduler(name: str) -> Scheduler:
    """The record of scheduler ``name`` (its module is imported only now).

    Raises
    ------
    ValueError
        One line naming the valid schedulers when there is none of that name, or when its
        module does not define a ``SCHEDULER`` record.
    """
    if name in _builtin():
        record = getattr(importlib.import_module(f"parsl_configs.schedulers.{name}"),
                         "SCHEDULER", None)
    elif name in _plugins():
        record = _plugins()[name].load()
    else:
        raise ValueError(f"machine.scheduler={name!r} is unknown; valid: {', '.join(names())}")
    if not isinstance(record, Scheduler):
        raise ValueError(f"scheduler {name!r} defines no Scheduler record (SCHEDULER = "
                         "Scheduler(...) in its module)")
    return record
