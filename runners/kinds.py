"""What differs between benchmark kinds on the driver side: the program's command line
and how a trial's result lines become metrics and table rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runners.launch import launch_prefix

BENCH_DIR = Path(__file__).resolve().parent / "benches"


def trial_argv(cfg: Any, env_dir: str) -> list[str]:
    """The full argv of one trial (launcher + program), never run through a shell.

    Parameters
    ----------
    cfg : DictConfig
        The experiment config.
    env_dir : str
        The staged environment (may be the ``{env}`` placeholder, filled in on the worker).
    """
    bench = cfg.bench
    if bench.kind == "mpi4py_import":
        program = str(BENCH_DIR / "mpi4py_import.py")
        return [*launch_prefix(cfg.machine, int(bench.ranks), env_dir),
                f"{env_dir}/bin/python", program, *[str(p) for p in bench.packages]]
    raise ValueError(f"unknown bench.kind {bench.kind!r}")


def trial_metrics(results: list[dict[str, Any]], measured: dict[str, Any]) -> dict[str, float]:
    """Per-trial metrics of mpi4py-import: total wall time, slowest and mean rank.

    Parameters
    ----------
    results : list of dict
        The trial's parsed result lines.
    measured : dict
        The psutil measurement of the trial.
    """
    imports = [r["value"] for r in results if r["name"] == "import_s"]
    totals = [r["value"] for r in results if r["name"] == "rank_total_s"]
    inits = [r["value"] for r in results if r["name"] == "mpi_init_s"]
    out = {"total_s": float(measured["wall_s"]), "peak_rss_mb": float(measured["peak_rss_mb"]),
           "cpu_user_s": float(measured["cpu_user_s"]),
           "cpu_system_s": float(measured["cpu_system_s"]),
           "host_load1": float(measured["host_before"].get("load1", 0.0))}
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
