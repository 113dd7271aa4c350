"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Types live here; values live in YAML under ``conf/``.  A machine is data: adding one
needs a YAML file only, unless it brings a new scheduler.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FilesystemConfig:
    """One filesystem a machine offers.

    ``path`` is the root under which environments are staged; it may name an
    environment variable that exists only inside a job (e.g. ``$DW_JOB_STRIPED``).
    """

    path: str = MISSING
    supported: bool = True
    note: str = ""
    image: str = ""
    directives: list[str] = field(default_factory=list)


@dataclass
class MachineConfig:
    """Where experiments run: the scheduler, the MPI launcher, the resources and filesystems.

    Generic names (``walltime_min``, ``ranks_per_node``, ...) are translated to
    scheduler words in ``parsl_configs/`` only.
    """

    name: str = MISSING
    description: str = ""
    scheduler: str = "local"
    launcher: str = "mpiexec"
    launcher_args: list[str] = field(default_factory=list)
    mpiexec: str = "mpiexec"
    account: str = ""
    queue: str = ""
    partition: str = ""
    qos: str = ""
    constraint: str = ""
    constraints: list[str] = field(default_factory=list)
    exclusive: bool = True
    gpus_per_node: int = 0
    walltime_min: int = 30
    nodes: int = 1
    ranks_per_node: int = 2
    cores_per_node: int = 2
    mem_gb: float = 0.0
    max_workers: int = 2
    worker_init: str = ""
    scheduler_options: str = ""
    strategy_period: float = 0.5
    retries: int = 2           # re-runs of a task whose Parsl worker was lost (not others)
    cmd_timeout: int = 10
    address: str = ""
    env_root: str = MISSING
    env: dict[str, str] = field(default_factory=dict)
    filesystems: dict[str, FilesystemConfig] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FsChoice:
    """The filesystem picked for this experiment; its path comes from the machine."""

    name: str = MISSING
    description: str = ""


@dataclass
class BenchConfig:
    """Fields every benchmark has."""

    name: str = MISSING
    kind: str = MISSING
    experiment: str = "${.name}"
    env: str = MISSING
    ranks: Any = 1
    trials: Any = 1
    warmup: Any = 0
    timeout_s: float = 600.0


@dataclass
class Mpi4pyImportBench(BenchConfig):
    """The mpi4py-import benchmark: N ranks import a package suite (seed 001)."""

    name: str = "mpi4py_import"
    kind: str = "mpi4py_import"
    env: str = "mpi4py_import"
    ranks: Any = 2
    trials: Any = 3
    packages: list[str] = field(default_factory=lambda: ["numpy"])
    strace: bool = True


@dataclass
class OsuBench(BenchConfig):
    """OSU MPI micro-benchmarks written for mpi4py (``runners/benches/osu.py``)."""

    name: str = "osu"
    kind: str = "osu"
    env: str = "mpi4py_import"
    ranks: Any = 2
    trials: Any = 3
    tests: list[str] = field(default_factory=lambda: ["latency", "bw", "bibw", "bcast",
                                                      "allreduce"])
    min_size: Any = 1
    max_size: Any = 1048576
    iterations: Any = None
    warmup_iterations: Any = None


@dataclass
class ParslPerfBench(BenchConfig):
    """The installed Parsl's ``parsl-perf`` against the machine's Parsl config."""

    name: str = "parsl_perf"
    kind: str = "parsl_perf"
    env: str = ""
    ranks: Any = 1
    trials: Any = 1
    time: float = 10.0
    iterate: str = "estimate"
    argsize: int = 0


@dataclass
class CommandBench(BenchConfig):
    """Any command printing JSON result lines (the project's output contract).

    ``command`` is a template: ``{python}`` (the benchmark environment's, or the runner's
    when ``env`` is empty), ``{launch}`` (the MPI launcher prefix for ``ranks``),
    ``{project}`` and every key of ``params`` are filled in, each value shell-quoted.
    """

    name: str = "command"
    kind: str = "command"
    env: str = ""
    command: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Mpi4pyCiBench(OsuBench):
    """Build mpi4py from source → sanity (print rank) → deploy → OSU → PDF summary (seed 000)."""

    name: str = "mpi4py_ci"
    kind: str = "mpi4py_ci"
    env: str = "mpi4py_ci"
    trials: Any = 1
    sanity_ranks: int = 2
    sanity_pattern: str = "Hello from rank 1 of 2"
    release_root: str = "${cache_root}/releases"
    build_timeout_s: float = 1800.0


@dataclass
class TrackingConfig:
    """Where MLflow records runs."""

    name: str = "local"
    uri: str = MISSING
    artifact_root: str = ""
    experiment: str = ""
    spool: str = ""        # a remote server's offline journal ('' = none); see runners/spool.py


@dataclass
class Config:
    """The primary config: machine × filesystem × benchmark × tracking."""

    machine: MachineConfig = MISSING
    fs: FsChoice = MISSING
    bench: Any = MISSING
    tracking: TrackingConfig = MISSING
    project_root: str = MISSING
    cache_root: str = MISSING
    dry_run: bool = False
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # extra patterns of secret keys (runners/redact.py), redacted before anything is logged
    redact: list[str] = field(default_factory=list)
    # sweeps (python run.py -m ...): see runners/sweep.py
    rerun: bool = False           # run jobs that already have a FINISHED run in the store
    skip_invalid: bool = False    # list and skip invalid points instead of refusing the sweep
    select: str = "all"           # all | random (one job drawn from the matrix)
    seed: Optional[int] = None    # noqa: UP045 - the random draw's seed (OmegaConf needs Optional)


BENCH_SCHEMAS: dict[str, type[BenchConfig]] = {
    "mpi4py_import": Mpi4pyImportBench, "osu": OsuBench, "parsl_perf": ParslPerfBench,
    "command": CommandBench, "mpi4py_ci": Mpi4pyCiBench}


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("python_prefix"):   # the runner's environment (a venv)
        OmegaConf.register_new_resolver("python_prefix", lambda: sys.prefix)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for kind, schema in BENCH_SCHEMAS.items():
        cs.store(group="bench", name=f"{kind}_schema", node=schema)
    import hydra_plugins.bench_launcher.bench_sweeper  # noqa: F401 - hydra/sweeper=bench
    import hydra_plugins.bench_launcher.parsl_launcher  # noqa: F401 - hydra/launcher=parsl
