"""The jobs of a sweep: one per point of the Hydra multirun, checked before anything runs.

Every job is composed and validated first (an invalid point stops the sweep unless
``skip_invalid=true``); ``select=random`` draws one; each job gets the executor label of
its machine and the overrides that name its point.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from runners.config.validate import preflight, validate
from runners.errors import ConfigError
from runners.kinds.base import Kind

SWEEP_OPTIONS = ("rerun", "skip_invalid", "select", "seed")
NOT_IN_SWEEP_ID = ("tracking.", "hydra.", "run_name", "tags.", "dry_run")


@dataclass
class Job:
    """One point of the sweep."""

    num: int
    overrides: list[str]
    config: DictConfig                      # with its ``hydra`` section
    label: str = ""                         # the Parsl executor it runs on
    point: str = ""                         # the overrides that differ between jobs
    state: str = "pending"  # pending|invalid|skipped|running|finished|failed
    run_id: str = ""
    detail: str = ""
    future: Future[Any] | None = field(default=None, repr=False)
    kind: Kind | None = field(default=None, repr=False)    # set when the job is validated

    @property
    def task(self) -> DictConfig:
        """The job's config without the ``hydra`` section (what the task function sees)."""
        cfg = self.config.copy()
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def name(self) -> str:
        """The job's point of the sweep (its own overrides), for people."""
        return self.point or "(default)"


def name_points(jobs: list[Job]) -> None:
    """Set each job's ``point``: only the overrides whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for o in job.overrides:
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
    for job in jobs:
        job.point = " ".join(o for o in job.overrides if len(values[o.partition("=")[0]]) > 1)
        if not job.point and len(jobs) == 1:
            job.point = " ".join(o for o in job.overrides
                                 if not o.startswith(NOT_IN_SWEEP_ID))


def sweep_id(overrides: list[str]) -> str:
    """A stable id of a sweep: the hash of its overrides without the sweep's own options,
    the store and the output paths (the same sweep resumed later keeps its id)."""
    kept = sorted(o for o in overrides if o.split("=")[0].lstrip("+~") not in SWEEP_OPTIONS
                  and not o.lstrip("+~").startswith(NOT_IN_SWEEP_ID))
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:12]


def executor_labels(jobs: list[Job]) -> None:
    """Give each job an executor label: the machine's name, one executor per distinct
    machine config (a sweep over ``machine.max_workers`` gets one executor per value)."""
    variants: dict[str, list[str]] = {}
    keys: dict[int, tuple[str, str]] = {}
    for job in jobs:
        cfg = job.config
        fs = cfg.machine.filesystems.get(cfg.fs.name)
        key = json.dumps([OmegaConf.to_container(cfg.machine, resolve=True),
                          list(fs.directives) if fs is not None else []], sort_keys=True)
        name = str(cfg.machine.name)
        variants.setdefault(name, [])
        if key not in variants[name]:
            variants[name].append(key)
        keys[job.num] = (name, key)
    for job in jobs:
        name, key = keys[job.num]
        i = variants[name].index(key)
        job.label = name if len(variants[name]) == 1 else f"{name}-{i + 1}"


def check_points(jobs: list[Job], skip_invalid: bool) -> list[Job]:
    """Validate every job before anything runs; return the valid ones.

    Raises
    ------
    ConfigError
        At the first invalid point, unless ``skip_invalid`` (then they are listed).
    """
    valid = []
    for job in jobs:
        try:
            job.kind = validate(job.config)
            if not job.config.dry_run:
                preflight(job.config)
            valid.append(job)
        except ConfigError as exc:
            if not skip_invalid:
                raise ConfigError(f"sweep point #{job.num} ({job.name()}): {exc} — nothing was "
                                  "run; fix the sweep or pass skip_invalid=true to skip invalid "
                                  "points") from None
            job.state, job.detail = "invalid", str(exc)
            print(f"skip #{job.num} ({job.name()}): invalid: {exc}", file=sys.stderr)
    return valid


def draw(jobs: list[Job], seed: int | None) -> tuple[Job, int]:
    """One job drawn at random (seeded: the same seed draws the same job); return it and
    the seed used (a fresh one when none was given, so every draw can be repeated)."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return jobs[random.Random(seed).randrange(len(jobs))], seed


@dataclass
class Counts:
    """How many jobs ended each way."""

    total: int = 0
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    invalid: int = 0
    running: int = 0

    def metrics(self) -> dict[str, float]:
        """The counts as parent-run metrics."""
        return {f"jobs_{k}": float(v) for k, v in vars(self).items() if k != "running"}
