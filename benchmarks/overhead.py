"""Runner overhead and fidelity for mpi4py-import (issue: the foundation).

Overhead: wall time of ``python run.py bench.ranks=2 bench.trials=3`` against the bare
work it wraps — the same commands run by hand (warm-up import, strace count, 3 mpiexec
trials) plus a minimal script that logs the same numbers to MLflow.  Fidelity: the
median ``total_s`` the runner reports against ``mpiexec -n 2 python <program>`` and
``mpiexec -n 2 python -c 'import mpi4py.MPI, numpy'`` timed outside it.

Runner and bare runs alternate in one process, so both see the same machine load.

    python benchmarks/overhead.py [--reps 5]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402

BIN = Path(sys.executable).parent
LOG_SCRIPT = """
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
c = MlflowClient(tracking_uri=sys.argv[1])
exp = c.get_experiment_by_name("bare") or None
eid = exp.experiment_id if exp else c.create_experiment("bare")
run = c.create_run(eid)
now = int(time.time() * 1000)
c.log_batch(run.info.run_id, params=[Param("bench.ranks", "2")],
            metrics=[Metric("total_s", float(v), now, i) for i, v in enumerate(sys.argv[2:])])
c.set_terminated(run.info.run_id)
"""


def staged_env() -> Path:
    """The environment the runner staged on tmpfs (run the runner once first)."""
    found = sorted(glob.glob(f"/dev/shm/{os.environ.get('USER', 'bench')}/bench-envs/*/bin/python"))
    if not found:
        raise SystemExit("run `python run.py` once first, so the environment is staged")
    return Path(found[-1]).parent.parent


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Run a command to completion and return its wall time."""
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)
    return time.perf_counter() - t0


def bare(env_dir: Path, uri: str) -> tuple[float, list[float]]:
    """The bare work: warm-up import, strace count, 3 trials, a minimal MLflow log."""
    py = str(env_dir / "bin" / "python")
    code = "import mpi4py; mpi4py.rc.initialize = False; from mpi4py import MPI; import numpy"
    t0 = time.perf_counter()
    timed([py, "-c", code])
    if shutil.which("strace"):
        timed(["strace", "-f", "-c", "-o", os.devnull, "-e",
               "trace=open,openat,stat,lstat,fstat,newfstatat,statx", py, "-c", code])
    program = str(ROOT / "runners" / "benches" / "mpi4py_import.py")
    trials = [timed([str(env_dir / "bin" / "mpiexec"), "-n", "2", py, program, "numpy"])
              for _ in range(3)]
    timed([sys.executable, "-c", LOG_SCRIPT, uri, *map(str, trials)])
    return time.perf_counter() - t0, trials


def runner(uri: str, art: str, out: str) -> tuple[float, float]:
    """One ``python run.py`` run; returns (wall, median total_s it reported)."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    argv = [sys.executable, str(ROOT / "run.py"), "bench.ranks=2", "bench.trials=3",
            f"tracking.uri={uri}", f"tracking.artifact_root={art}", f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("total_s"))
    return wall, float(line.split()[2])


def main() -> None:
    """Alternate runner and bare runs; write benchmarks/results/overhead.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-overhead-")
    uri, art = f"sqlite:///{tmp}/mlflow.db", f"{tmp}/artifacts"
    runner(uri, art, f"{tmp}/out-warm")            # store created, env cached and staged
    env_dir = staged_env()
    py = str(env_dir / "bin" / "python")
    mpiexec = str(env_dir / "bin" / "mpiexec")
    program = str(ROOT / "runners" / "benches" / "mpi4py_import.py")
    r_wall: list[float] = []
    r_total: list[float] = []
    b_wall: list[float] = []
    b_trial: list[float] = []
    plain: list[float] = []
    prog: list[float] = []
    for i in range(args.reps):
        w, t = runner(uri, art, f"{tmp}/out-{i}")
        r_wall.append(w)
        r_total.append(t)
        bw, trials = bare(env_dir, uri)
        b_wall.append(bw)
        b_trial.extend(trials)
        plain.extend(timed([mpiexec, "-n", "2", py, "-c", "import mpi4py.MPI, numpy"])
                     for _ in range(3))
        prog.extend(timed([mpiexec, "-n", "2", py, program, "numpy"]) for _ in range(3))
    over = med(r_wall) - med(b_wall)
    body = f"""Command: `python run.py bench.ranks=2 bench.trials=3` (environment cached and staged),
{args.reps} repetitions alternating with the bare work.

| what | median (s) | all (s) |
| --- | ---: | --- |
| runner, whole command | {med(r_wall):.2f} | {', '.join(f'{x:.2f}' for x in r_wall)} |
| bare work (same commands + minimal MLflow log) | {med(b_wall):.2f} | {', '.join(f'{x:.2f}' for x in b_wall)} |
| **overhead added by the runner** | **{over:.2f}** | target ≤ 3 s |

Fidelity (per trial, launch to exit, 2 ranks):

| what | median (s) | ratio to runner |
| --- | ---: | ---: |
| runner's reported `total_s` | {med(r_total):.4f} | 1.000 |
| bare `mpiexec -n 2 python mpi4py_import.py numpy` | {med(prog):.4f} | {med(prog) / med(r_total):.3f} |
| bare `mpiexec -n 2 python -c 'import mpi4py.MPI, numpy'` | {med(plain):.4f} | {med(plain) / med(r_total):.3f} |
| bare trials inside the bare-work sequence | {med(b_trial):.4f} | {med(b_trial) / med(r_total):.3f} |

Target: within 5% (ratio 0.95–1.05).
"""
    print(body)
    print(write_result("overhead", body))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
