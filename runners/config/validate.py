"""Validate a composed config before anything is submitted or recorded.

The machine, filesystem and generic benchmark fields are checked here; the benchmark's
own fields by its kind (:meth:`runners.kinds.base.Kind.validate`).  Every check raises
:class:`runners.errors.ConfigError` with one line that names the value and says what
would be valid.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from parsl_configs.scheduler import names, scheduler
from runners.config.checks import as_int
from runners.config.schema import SCOPES
from runners.errors import ConfigError
from runners.kinds.base import Kind
from runners.kinds.registry import kind_of
from runners.stages.launch import LAUNCHERS
from runners.tracking.redact import compile_patterns


def preflight(cfg: DictConfig) -> None:
    """Check that this host can submit to the machine's scheduler (a real run only): the
    commands and Python packages its scheduler record names, then the record's own check
    (e.g. Slurm's controller answers and has the nodes asked for).

    Raises
    ------
    ConfigError
        When the scheduler's commands (or Python client) are missing here.
    """
    import importlib.util
    import shutil

    machine = cfg.machine
    record = scheduler(str(machine.scheduler))
    missing = [c for c in record.commands if shutil.which(c) is None]
    if missing:
        raise ConfigError(f"machine={machine.name} submits with {machine.scheduler}, but "
                          f"{', '.join(missing)} not found on this host; run on the machine, "
                          "or add dry_run=true to see what would be submitted")
    for module in record.python_modules:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"machine={machine.name} needs the {module!r} Python package "
                              f"(pip install '.[{module}]'), or add dry_run=true")
    if record.check is not None:
        problem = record.check(machine)
        if problem:
            raise ConfigError(problem)


def validate_machine(cfg: DictConfig) -> None:
    """The machine's scheduler and launcher, the chosen filesystem, the resources."""
    machine, fs = cfg.machine, cfg.fs
    if machine.scheduler not in names():
        raise ConfigError(f"machine.scheduler={machine.scheduler!r} is unknown; "
                          f"valid: {', '.join(names())}")
    if machine.launcher not in LAUNCHERS:
        raise ConfigError(f"machine.launcher={machine.launcher!r} is unknown; "
                          f"valid: {', '.join(LAUNCHERS)}")
    offered = sorted(machine.filesystems)
    if fs.name not in machine.filesystems:
        raise ConfigError(f"fs={fs.name} is not offered by machine={machine.name}; "
                          f"valid for {machine.name}: {', '.join(offered)}")
    fsc = machine.filesystems[fs.name]
    if not fsc.supported and not fsc.image:
        raise ConfigError(f"fs={fs.name} is not supported on machine={machine.name}"
                          f"{' (' + fsc.note + ')' if fsc.note else ''}; set "
                          f"machine.filesystems.{fs.name}.image=<image> to use it, or pick one "
                          f"of: {', '.join(n for n in offered if machine.filesystems[n].supported)}"
                          )
    if fsc.scope not in SCOPES:
        raise ConfigError(f"machine.filesystems.{fs.name}.scope={fsc.scope!r} is unknown; "
                          f"valid: {', '.join(SCOPES)} (node: each node has its own copy, "
                          "e.g. tmpfs; shared: every node sees the same files)")
    if machine.constraints and machine.constraint not in machine.constraints:
        raise ConfigError(f"machine.constraint={machine.constraint!r} is not offered by "
                          f"machine={machine.name}; valid: {', '.join(machine.constraints)}")
    as_int(machine.nodes, "machine.nodes", 1)
    as_int(machine.retries, "machine.retries", 0)
    as_int(machine.ranks_per_node, "machine.ranks_per_node", 1)


def validate_bench(cfg: DictConfig, kind: Kind) -> None:
    """The fields every benchmark has, then the kind's own."""
    machine, bench = cfg.machine, cfg.bench
    if kind.uses_launcher() and machine.launcher == "none":
        raise ConfigError(f"bench={bench.name} needs an MPI launcher, but machine={machine.name} "
                          "has launcher=none; use a machine with srun, mpiexec or aprun")
    ranks = as_int(bench.ranks, "bench.ranks", 1)
    as_int(bench.trials, "bench.trials", 1)
    as_int(bench.warmup, "bench.warmup", 0)
    nodes, per_node = int(machine.nodes), int(machine.ranks_per_node)
    if ranks > nodes * per_node:
        raise ConfigError(f"bench.ranks={ranks} exceeds machine={machine.name}'s "
                          f"{nodes} node(s) x {per_node} ranks per node = {nodes * per_node}; "
                          f"lower bench.ranks or raise machine.nodes")
    if bench.env:
        spec = kind.env_spec()
        if not spec.is_file():
            known = sorted(p.stem for p in Path(spec).parent.glob("*.yaml"))
            raise ConfigError(f"bench.env={bench.env!r} has no spec {spec}; "
                              f"valid: {', '.join(known)}")
    if float(bench.timeout_s) <= 0:
        raise ConfigError(f"bench.timeout_s={bench.timeout_s} must be > 0 seconds")
    kind.validate()


def validate(cfg: DictConfig) -> Kind:
    """Check a composed config; raise ConfigError with one clear line on the first problem.

    Parameters
    ----------
    cfg : DictConfig
        The composed experiment config (its ``bench`` section is filled in from the kind's
        schema where the composition did not use it).

    Returns
    -------
    Kind
        The benchmark's kind, ready to run.
    """
    try:
        compile_patterns(str(p) for p in cfg.get("redact") or ())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    validate_machine(cfg)
    kind = kind_of(cfg)
    validate_bench(cfg, kind)
    return kind
