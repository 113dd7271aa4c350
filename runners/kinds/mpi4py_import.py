"""mpi4py-import (seed 001): N MPI ranks import a package suite from an environment staged
on the chosen filesystem; the slowest rank is what a user waits for at scale.

Stages: env → stage → warm-up (one import, bytecode written; syscall counts) → trials.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.config.schema import BenchConfig
from runners.errors import ConfigError
from runners.kinds.base import BENCH_DIR, Kind, Merit, Prepared, Submit, write_csv
from runners.stages.trial import TrialCommand
from runners.stages.warmup import warmup

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: Per-rank results that become the per-rank CSV rather than curves.
RANK_RESULTS = ("mpi_init_s", "import_s", "rank_total_s")


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


class Mpi4pyImport(Kind):
    """Import time of a Python package suite at scale."""

    name = "mpi4py_import"
    schema = Mpi4pyImportBench
    mpi = True
    staged = True
    plots = False      # steps are ranks: the per-rank times go to results/per_rank.csv

    def validate(self) -> None:
        """Every package is an importable module name (nothing else reaches a command)."""
        for pkg in self.bench.packages:
            if not isinstance(pkg, str) or not MODULE_NAME.match(pkg):
                raise ConfigError(f"bench.packages entry {pkg!r} is not an importable module "
                                  "name; give dotted Python module names, e.g. "
                                  "bench.packages=[numpy]")

    def prepare(self, submit: Submit, out_dir: Path) -> Prepared:
        """env → stage → warm-up import (with strace counts)."""
        prepared = super().prepare(submit, out_dir)
        prepared.ready = submit(warmup, prepared.ready, [str(p) for p in self.bench.packages],
                                str(out_dir / "stages" / "warmup"), bool(self.bench.strace),
                                float(self.bench.timeout_s))
        prepared.waits.append(("warmup", prepared.ready))
        return prepared

    def commands(self, env_dir: str) -> list[TrialCommand]:
        """N ranks of ``mpi4py_import.py <packages>``."""
        argv = [*self.launch(int(self.bench.ranks), env_dir), f"{env_dir}/bin/python",
                str(BENCH_DIR / "mpi4py_import.py"), *[str(p) for p in self.bench.packages]]
        return [TrialCommand(tuple(argv))]

    def trial_metrics(self, results: Sequence[dict[str, Any]],
                      measured: dict[str, Any]) -> dict[str, float]:
        """The measurement plus the slowest and mean rank."""
        out = super().trial_metrics(results, measured)
        out.pop("ranks", None)
        imports = [r["value"] for r in results if r["name"] == "import_s"]
        totals = [r["value"] for r in results if r["name"] == "rank_total_s"]
        inits = [r["value"] for r in results if r["name"] == "mpi_init_s"]
        if imports:
            out.update({"slowest_rank_s": max(imports), "mean_rank_s": sum(imports) / len(imports),
                        "slowest_rank_total_s": max(totals) if totals else 0.0,
                        "slowest_mpi_init_s": max(inits) if inits else 0.0,
                        "ranks_seen": float(len(imports))})
            out.update(node_summary(results))
        return out

    def merits(self, results: Sequence[dict[str, Any]]) -> list[Merit]:
        """The slowest rank's import (what a job waits for), the mean rank's, and the
        launch-to-exit time."""
        return [Merit("slowest_rank_s", "s"), Merit("mean_rank_s", "s"), Merit("total_s", "s")]

    def files(self, results: Sequence[Sequence[dict[str, Any]]], out_dir: Path) -> list[Path]:
        """``per_rank.csv``: trial, rank, host, launch step and the rank's times;
        ``per_node.csv``: trial, host, its ranks, their mean and slowest import."""
        rows = [row for t, rs in enumerate(results) for row in rank_rows(t, rs)]
        nodes = [row for t, rs in enumerate(results) for row in node_rows(t, rs)]
        return [write_csv(out_dir / "per_rank.csv", rows),
                write_csv(out_dir / "per_node.csv", nodes)]

    def shown(self, stats: dict[str, dict[str, float]], merits: Sequence[Merit]) -> list[str]:
        """The launch-to-exit time, the ranks, MPI start-up and memory."""
        return [k for k in ("total_s", "slowest_rank_s", "mean_rank_s", "slowest_mpi_init_s",
                            "peak_rss_mb") if k in stats]

    def plan(self, out_dir: Path) -> list[str]:
        """env, stage and the warm-up import."""
        per_node = self.per_node()
        where = f"on each node ({' '.join(per_node)}) " if per_node else ""
        return [*super().plan(out_dir),
                f"warmup  {where}<env>/bin/python -c 'import {', '.join(self.bench.packages)}'"
                " (+ strace -f -c when available)"]


def node_summary(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per-node figures of one trial, from the hosts the ranks report: ``nodes_seen``, the
    slowest node's mean import (``slowest_node_s``), the fastest's, and the spread between
    them (``node_spread_s``): one slow node drags the slowest rank."""
    means = [row["mean_import_s"] for row in node_rows(0, results)]
    if not means:
        return {}
    return {"nodes_seen": float(len(means)), "slowest_node_s": max(means),
            "fastest_node_s": min(means), "node_spread_s": max(means) - min(means)}


def node_rows(trial: int, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-node rows of one trial (trial, host, ranks, mean and slowest import)."""
    per_host: dict[str, list[float]] = {}
    for r in results:
        if r["name"] == "import_s" and r.get("step") is not None:
            per_host.setdefault(str(r.get("tags", {}).get("host", "")), []).append(r["value"])
    return [{"trial": trial, "host": host, "ranks": len(v), "mean_import_s": sum(v) / len(v),
             "slowest_import_s": max(v)} for host, v in sorted(per_host.items())]


def rank_rows(trial: int, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-rank rows (trial, rank, host, launch_step, mpi_init_s, import_s, rank_total_s)."""
    rows: dict[int, dict[str, Any]] = {}
    for r in results:
        if r.get("step") is None or r["name"] not in RANK_RESULTS:
            continue
        tags = r.get("tags", {})
        row = rows.setdefault(int(r["step"]), {"trial": trial, "rank": int(r["step"]),
                                               "host": tags.get("host", ""),
                                               "launch_step": tags.get("launch_step", "")})
        row[r["name"]] = r["value"]
    return [rows[k] for k in sorted(rows)]


KIND = Mpi4pyImport
