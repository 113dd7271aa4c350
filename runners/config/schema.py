"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Types live here; values live in YAML under ``conf/``.  A machine is data: adding one
needs a YAML file only, unless it brings a new scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
#: Who sees a filesystem's files: each node its own, or every node the same.
SCOPES = ("node", "shared")


@dataclass
class FilesystemConfig:
    """One filesystem a machine offers.

    ``path`` is the root under which environments are staged; it may name an
    environment variable that exists only inside a job (e.g. ``$DW_JOB_STRIPED``).
    ``scope`` says who sees it: ``node`` (each node has its own, e.g. tmpfs or a node's
    NVMe: an environment is staged on every node of the allocation) or ``shared`` (every
    node sees the same files: staged once).
    """

    path: str = MISSING
    scope: str = "shared"
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
    """Fields every benchmark has; a kind's schema extends it (``runners/kinds/``)."""

    name: str = MISSING
    kind: str = MISSING
    experiment: str = "${.name}"
    env: str = MISSING
    ranks: Any = 1
    trials: Any = 1
    warmup: Any = 0
    timeout_s: float = 600.0


@dataclass
class TrackingConfig:
    """Where MLflow records runs."""

    name: str = "local"
    uri: str = MISSING
    artifact_root: str = ""
    experiment: str = ""
    spool: str = ""        # a server's offline journal ('' = none): runners/tracking/spool.py


@dataclass
class TelemetryConfig:
    """Per-node sampling while the trials run (``runners/stages/telemetry.py``)."""

    enabled: bool = False
    interval_s: float = 1.0


@dataclass
class SiteConfig:
    """A site: an agent on this or another host that runs queued runs (``runners/site/``).

    ``name`` '' runs the experiment here and now; ``site=NAME`` queues it in the store
    (status SCHEDULED) for the agent of site NAME (``bench site start NAME``).
    """

    name: str = ""
    machine: str = ""           # the machine its agent serves (runs must compose with it)
    wait: bool = False          # wait for the run to end and print its summary
    wait_agent_s: float = 10.0  # wait=true with no live agent: give up after this long
    poll_s: float = 0.2         # how often the agent looks for queued runs
    heartbeat_s: float = 10.0   # how often the agent records that it is alive
    idle_min: float = 10.0      # blocks idle this long are released (Parsl's max_idletime)
    retries: int = 0            # requeue a run whose agent was lost, this many times
    workers: int = 0            # runs at once (0: the machine's max_workers)
    dir: str = ""               # where agents keep pid, log and socket files (per host)


@dataclass
class Config:
    """The primary config: machine × filesystem × benchmark × tracking."""

    machine: MachineConfig = MISSING
    fs: FsChoice = MISSING
    bench: Any = MISSING
    tracking: TrackingConfig = MISSING
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    project_root: str = MISSING
    cache_root: str = MISSING
    dry_run: bool = False
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # extra patterns of secret keys (runners/tracking/redact.py), redacted before logging
    redact: list[str] = field(default_factory=list)
    # sweeps (python run.py -m ...): see runners/sweep/
    rerun: bool = False           # run jobs that already have a FINISHED run in the store
    skip_invalid: bool = False    # list and skip invalid points instead of refusing the sweep
    select: str = "all"           # all | random (one job drawn from the matrix)
    seed: Optional[int] = None    # noqa: UP045 - the random draw's seed (OmegaConf needs Optional)
