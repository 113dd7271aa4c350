"""Validate a composed config before anything is submitted or recorded.

Every check raises :class:`runners.entry.ConfigError` with one line that names the
value and says what would be valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runners.entry import ConfigError
from runners.kinds import MPI_KINDS

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SCHEDULERS = ("local", "slurm", "pbspro", "cobalt", "kubernetes")
LAUNCHERS = ("mpiexec", "srun", "aprun", "none")
OSU_TESTS = ("latency", "bw", "bibw", "bcast", "allreduce")
PT2PT = ("latency", "bw", "bibw")
MAX_SIZE = 1 << 30
SCHEDULER_COMMANDS = {"slurm": ("sbatch", "squeue", "scancel"), "pbspro": ("qsub", "qstat", "qdel"),
                      "cobalt": ("qsub", "qstat", "qdel")}


def as_int(value: Any, key: str, minimum: int) -> int:
    """Return ``value`` as an int ≥ ``minimum`` or raise a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key}={value!r} is not a whole number; give an integer >= {minimum}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(
            f"{key}={value!r} is not a whole number; give an integer >= {minimum}, "
            f"e.g. {key}={max(minimum, 2)}") from None
    if number < minimum:
        raise ConfigError(f"{key}={number} is too small; give an integer >= {minimum}")
    return number


def env_spec_path(cfg: Any) -> Path:
    """The environment spec file a benchmark asks for (``envs/<bench.env>.yaml``)."""
    return Path(cfg.project_root) / "envs" / f"{cfg.bench.env}.yaml"


def preflight(cfg: Any) -> None:
    """Check that this host can submit to the machine's scheduler (a real run only).

    Raises
    ------
    ConfigError
        When the scheduler's commands (or Python client) are missing here.
    """
    import shutil

    machine = cfg.machine
    needed = SCHEDULER_COMMANDS.get(str(machine.scheduler), ())
    missing = [c for c in needed if shutil.which(c) is None]
    if missing:
        raise ConfigError(f"machine={machine.name} submits with {machine.scheduler}, but "
                          f"{', '.join(missing)} not found on this host; run on the machine, "
                          "or add dry_run=true to see what would be submitted")
    if machine.scheduler == "kubernetes":
        import importlib.util

        if importlib.util.find_spec("kubernetes") is None:
            raise ConfigError(f"machine={machine.name} needs the 'kubernetes' Python package "
                              "(pip install '.[kubernetes]'), or add dry_run=true")


def _size(value: Any, key: str) -> int:
    size = as_int(value, key, 0)
    if size > MAX_SIZE:
        raise ConfigError(f"{key}={size} is out of range; give 0..{MAX_SIZE} bytes (1 GiB)")
    if size and size & (size - 1):
        raise ConfigError(f"{key}={size} is not a power of two; OSU sizes double from "
                          "min_size to max_size, e.g. 1, 2, 4, ... 1048576")
    return size


def validate_osu(bench: Any, ranks: int) -> None:
    """OSU tests, message-size bounds and the ranks point-to-point tests need."""
    unknown = [t for t in bench.tests if t not in OSU_TESTS]
    if unknown or not bench.tests:
        raise ConfigError(f"bench.tests={list(bench.tests)} has unknown tests {unknown}; "
                          f"valid: {', '.join(OSU_TESTS)}")
    lo, hi = _size(bench.min_size, "bench.min_size"), _size(bench.max_size, "bench.max_size")
    if lo > hi:
        raise ConfigError(f"bench.min_size={lo} is larger than bench.max_size={hi}; "
                          "give min_size <= max_size")
    pt2pt = [t for t in bench.tests if t in PT2PT]
    if pt2pt and ranks < 2:
        raise ConfigError(f"bench.ranks={ranks} is too few for point-to-point tests "
                          f"({', '.join(pt2pt)}); give bench.ranks >= 2")
    if bench.kind == "mpi4py_ci":
        as_int(bench.sanity_ranks, "bench.sanity_ranks", 2)


def validate_command(cfg: Any) -> None:
    """The command template: present, and every placeholder known."""
    import string

    bench = cfg.bench
    known = {"python", "project", "ranks", "launch", *map(str, bench.params)}
    if not str(bench.command).strip():
        raise ConfigError("bench.command is empty; give a command that prints JSON result "
                          "lines, e.g. bench.command='{python} my_bench.py'")
    fields = {f for _, f, _, _ in string.Formatter().parse(str(bench.command)) if f}
    missing = sorted(fields - known)
    if missing:
        raise ConfigError(f"bench.command uses {{{missing[0]}}}, which is not a parameter; "
                          f"add +bench.params.{missing[0]}=<value> or use one of: "
                          f"{', '.join(sorted(known))}")


def validate_parsl_perf(bench: Any) -> None:
    """parsl-perf's --time and --iterate."""
    if float(bench.time) <= 0:
        raise ConfigError(f"bench.time={bench.time} must be > 0 seconds per iteration")
    it = str(bench.iterate)
    if it not in ("estimate", "exponential") and not re.fullmatch(r"\d+(,\d+)*", it):
        raise ConfigError(f"bench.iterate={it!r} is not valid; give estimate, exponential or "
                          "task counts such as '100,1000'")


def validate(cfg: Any) -> None:
    """Check a composed config; raise ConfigError with one clear line on the first problem.

    Parameters
    ----------
    cfg : DictConfig
        The composed experiment config.
    """
    machine, fs, bench = cfg.machine, cfg.fs, cfg.bench
    from runners.redact import compile_patterns

    try:
        compile_patterns(str(p) for p in cfg.get("redact") or ())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if machine.scheduler not in SCHEDULERS:
        raise ConfigError(f"machine.scheduler={machine.scheduler!r} is unknown; "
                          f"valid: {', '.join(SCHEDULERS)}")
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
    if machine.constraints and machine.constraint not in machine.constraints:
        raise ConfigError(f"machine.constraint={machine.constraint!r} is not offered by "
                          f"machine={machine.name}; valid: {', '.join(machine.constraints)}")
    if bench.kind in MPI_KINDS and machine.launcher == "none" or (
            bench.kind == "command" and "{launch}" in str(bench.get("command", ""))
            and machine.launcher == "none"):
        raise ConfigError(f"bench={bench.name} needs an MPI launcher, but machine={machine.name} "
                          "has launcher=none; use a machine with srun, mpiexec or aprun")
    ranks = as_int(bench.ranks, "bench.ranks", 1)
    as_int(bench.trials, "bench.trials", 1)
    as_int(bench.warmup, "bench.warmup", 0)
    nodes = as_int(machine.nodes, "machine.nodes", 1)
    as_int(machine.retries, "machine.retries", 0)
    per_node = as_int(machine.ranks_per_node, "machine.ranks_per_node", 1)
    if ranks > nodes * per_node:
        raise ConfigError(f"bench.ranks={ranks} exceeds machine={machine.name}'s "
                          f"{nodes} node(s) x {per_node} ranks per node = {nodes * per_node}; "
                          f"lower bench.ranks or raise machine.nodes")
    if bench.kind in ("osu", "mpi4py_ci"):
        validate_osu(bench, ranks)
    elif bench.kind == "command":
        validate_command(cfg)
    elif bench.kind == "parsl_perf":
        validate_parsl_perf(bench)
    if bench.env and not env_spec_path(cfg).is_file():
        known = sorted(p.stem for p in env_spec_path(cfg).parent.glob("*.yaml"))
        raise ConfigError(f"bench.env={bench.env!r} has no spec {env_spec_path(cfg)}; "
                          f"valid: {', '.join(known)}")
    if float(bench.timeout_s) <= 0:
        raise ConfigError(f"bench.timeout_s={bench.timeout_s} must be > 0 seconds")
    for pkg in bench.get("packages", []) or []:
        if not isinstance(pkg, str) or not MODULE_NAME.match(pkg):
            raise ConfigError(f"bench.packages entry {pkg!r} is not an importable module name; "
                              "give dotted Python module names, e.g. bench.packages=[numpy]")
