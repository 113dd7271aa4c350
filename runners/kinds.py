"""What differs between benchmark kinds on the driver side: the commands of one trial and
how a trial's result lines become per-trial metrics."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from runners.launch import launch_prefix

BENCH_DIR = Path(__file__).resolve().parent / "benches"
#: Kinds whose trials run MPI ranks through the machine's launcher.
MPI_KINDS = ("mpi4py_import", "osu", "mpi4py_ci")
#: Kinds that stage their environment onto the chosen filesystem before the trials.
STAGED_KINDS = ("mpi4py_import",)


def osu_argvs(cfg: Any, env_dir: str) -> list[list[str]]:
    """One ``osu.py <test>`` command per test, with the size bounds and iteration counts."""
    bench = cfg.bench
    prefix = [*launch_prefix(cfg.machine, int(bench.ranks), env_dir), f"{env_dir}/bin/python",
              str(BENCH_DIR / "osu.py")]
    opts = ["--min-size", str(bench.min_size), "--max-size", str(bench.max_size)]
    if bench.iterations is not None:
        opts += ["--iterations", str(bench.iterations)]
    if bench.warmup_iterations is not None:
        opts += ["--warmup", str(bench.warmup_iterations)]
    return [[*prefix, str(test), *opts] for test in bench.tests]


def command_argv(cfg: Any, env_dir: str) -> list[str]:
    """The user's command template with every value shell-quoted, split without a shell."""
    bench = cfg.bench
    python = f"{env_dir}/bin/python" if bench.env else sys.executable
    values = {str(k): shlex.quote(str(v)) for k, v in bench.params.items()}
    values.update(python=shlex.quote(python), project=shlex.quote(str(cfg.project_root)),
                  ranks=str(int(bench.ranks)))
    if "{launch}" in bench.command:
        values["launch"] = shlex.join(launch_prefix(cfg.machine, int(bench.ranks), env_dir))
    return shlex.split(str(bench.command).format(**values))


def trial_argvs(cfg: Any, env_dir: str) -> list[list[str]]:
    """The commands of one trial (launcher + program), never run through a shell.

    Parameters
    ----------
    cfg : DictConfig
        The experiment config.
    env_dir : str
        The benchmark environment (may be the ``{env}`` placeholder, filled in on the worker).
    """
    bench = cfg.bench
    if bench.kind == "mpi4py_import":
        return [[*launch_prefix(cfg.machine, int(bench.ranks), env_dir),
                 f"{env_dir}/bin/python", str(BENCH_DIR / "mpi4py_import.py"),
                 *[str(p) for p in bench.packages]]]
    if bench.kind in ("osu", "mpi4py_ci"):
        return osu_argvs(cfg, env_dir)
    if bench.kind == "command":
        return [command_argv(cfg, env_dir)]
    if bench.kind == "parsl_perf":
        return [[str(Path(sys.executable).with_name("parsl-perf")), "--config", env_dir,
                 "--time", str(bench.time), "--iterate", str(bench.iterate),
                 "--argsize", str(int(bench.argsize))]]
    raise ValueError(f"unknown bench.kind {bench.kind!r}")


def measured_metrics(measured: dict[str, Any]) -> dict[str, float]:
    """The psutil figures of a trial as metrics."""
    return {"total_s": float(measured["wall_s"]), "peak_rss_mb": float(measured["peak_rss_mb"]),
            "cpu_user_s": float(measured["cpu_user_s"]),
            "cpu_system_s": float(measured["cpu_system_s"]),
            "host_load1": float(measured["host_before"].get("load1", 0.0))}


def trial_metrics(kind: str, results: list[dict[str, Any]],
                  measured: dict[str, Any]) -> dict[str, float]:
    """Per-trial metrics: the measurement, plus the kind's own figures.

    For mpi4py-import: the slowest and mean rank; for every kind: each result without a
    ``step`` under its own name (results with a step are curves, see
    :func:`runners.analysis.curves.step_points`).
    """
    out = measured_metrics(measured)
    for r in results:
        if r.get("step") is None:
            out[str(r["name"])] = float(r["value"])
    if kind == "mpi4py_import":
        imports = [r["value"] for r in results if r["name"] == "import_s"]
        totals = [r["value"] for r in results if r["name"] == "rank_total_s"]
        inits = [r["value"] for r in results if r["name"] == "mpi_init_s"]
        out.pop("ranks", None)
        if imports:
            out.update({"slowest_rank_s": max(imports), "mean_rank_s": sum(imports) / len(imports),
                        "slowest_rank_total_s": max(totals) if totals else 0.0,
                        "slowest_mpi_init_s": max(inits) if inits else 0.0,
                        "ranks_seen": float(len(imports))})
    return out


def rank_rows(trial: int, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-rank rows (trial, rank, host, launch_step, mpi_init_s, import_s, rank_total_s)."""
    rows: dict[int, dict[str, Any]] = {}
    for r in results:
        if r.get("step") is None or r["name"] not in ("mpi_init_s", "import_s", "rank_total_s"):
            continue
        tags = r.get("tags", {})
        row = rows.setdefault(int(r["step"]), {"trial": trial, "rank": int(r["step"]),
                                               "host": tags.get("host", ""),
                                               "launch_step": tags.get("launch_step", "")})
        row[r["name"]] = r["value"]
    return [rows[k] for k in sorted(rows)]
