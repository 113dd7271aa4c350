"""The warm-up of mpi4py-import: one single-process import of the package suite (writes
bytecode), then the same import under ``strace -c`` to count file-metadata calls."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from runners.stages.base import StageError, StageResult, log_paths
from runners.stages.measure import read_text, run_measured, tail

STRACE_CALLS = "open,openat,stat,lstat,fstat,newfstatat,statx"


def import_code(packages: list[str]) -> str:
    """Python source that imports mpi4py (without initialising MPI) and the package suite."""
    lines = ["import json, mpi4py", "mpi4py.rc.initialize = False", "from mpi4py import MPI",
             "import importlib", "files = {}"]
    lines += [f"files[{p!r}] = getattr(importlib.import_module({p!r}), '__file__', None)"
              for p in packages]
    lines.append("print(json.dumps(files))")
    return "\n".join(lines)


def parse_strace_summary(text: str) -> dict[str, float]:
    """Parse ``strace -c`` output into ``{syscall: calls}`` plus ``total`` and ``errors``.

    Parameters
    ----------
    text : str
        The summary table ``strace -c -o FILE`` writes.

    Returns
    -------
    dict
    """
    counts: dict[str, float] = {}
    errors = 0.0
    for line in text.splitlines():
        tok = line.split()
        if len(tok) < 5 or not tok[0][0].isdigit() or tok[-1] == "total":
            continue
        counts[tok[-1]] = float(tok[3])
        errors += float(tok[4]) if len(tok) == 6 else 0.0
    counts["total"] = sum(counts.values())
    counts["errors"] = errors
    return counts


def warmup(staged: StageResult, packages: list[str], log_dir: str, use_strace: bool = True,
           timeout_s: float = 600.0) -> StageResult:
    """Import the package suite once from one process (writes bytecode), then count syscalls.

    Where the environment was staged on every node (``staged.data["per_node"]``), the
    import runs once on each node.

    An import that fails is a ``sanity`` failure.  Where ``strace`` is missing or not
    permitted, the counts are skipped and a tag says why.
    """
    t0 = time.perf_counter()
    python = str(Path(staged.data["env_dir"]) / "bin" / "python")
    out, err = log_paths(log_dir, "warmup")
    # On a node-local filesystem staged on several nodes, every node imports (each has
    # its own copy, so its own bytecode); the syscall count is the lead node's.
    per_node = list(staged.data.get("per_node") or [])
    # Bytecode is written even where the user's shell says not to (PYTHONDONTWRITEBYTECODE,
    # set on many CI hosts): without it every trial compiled the suite again (3x slower).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    m = run_measured([*per_node, python, "-c", import_code(packages)], out, err, timeout_s,
                     env=env, snapshot=False)
    if m.timed_out or m.returncode != 0:
        kind = "timeout" if m.timed_out else "sanity"
        raise StageError("warmup", kind, f"importing {', '.join(packages)} with {python} failed: "
                         f"{tail(err)}", [str(out), str(err)])
    metrics = {"warmup.import_s": m.wall_s}
    tags = {"warmup.module_files": (read_text(out, 4096).strip().splitlines() or [""])[0]}
    if per_node:
        tags["warmup.nodes"] = " ".join(per_node)
    logs = [str(out), str(err)]
    strace = shutil.which("strace")
    if not use_strace:
        tags["warmup.strace"] = "disabled"
    elif strace is None:
        tags["warmup.strace"] = "unavailable: strace is not installed"
    else:
        sout, serr = log_paths(log_dir, "strace")
        summary = Path(log_dir) / "strace.summary.txt"
        ms = run_measured([strace, "-f", "-c", "-o", str(summary), "-e", f"trace={STRACE_CALLS}",
                           python, "-c", import_code(packages)], sout, serr, timeout_s,
                          snapshot=False)
        if ms.returncode != 0 or not summary.is_file():
            tags["warmup.strace"] = f"unavailable: {tail(serr) or 'strace failed'}"
        else:
            counts = parse_strace_summary(summary.read_text())
            metrics.update({f"warmup.syscalls.{k}": v for k, v in counts.items()})
            tags["warmup.strace"] = "ok"
            logs.append(str(summary))
    return StageResult("warmup", time.perf_counter() - t0, metrics, tags, logs,
                       dict(staged.data))
