"""Latencies the tests check only for behaviour (never as timed assertions): how long each
takes here, with its budget, all in one run.

* ``slurm start (up)``: ``cluster/slurm/start.sh`` when the cluster is already up
  (idempotent: it only checks); budget 1 s.
* ``sbatch round trip``: ``sbatch --wrap 'sleep 1'`` until the job left the queue; 10 s.
* ``run.py, Slurm down``: a run on ``machine=docker-slurm`` with the cluster stopped, to
  its one-line exit 2 (``sinfo`` cannot reach the controller; bounded by the machine's
  command timeout); 90 s.
* ``detect_steps, 2,000 points``: the penalized step fit of a 2,000-point series; 5 s.
* ``hung qstat``: ``CobaltProvider.status`` against a ``qstat`` that hangs, with
  ``cmd_timeout=1``; 15 s.
* ``timeout kill``: ``run_measured`` of a process tree sleeping 60 s with a 1 s timeout;
  10 s.

    python benchmarks/latencies.py [--reps 3] [--skip-slurm]

The Slurm cluster is started if needed and stopped again at the end if it was not up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
SLURM = ROOT / "cluster" / "slurm"
BIN = Path(sys.executable).parent


def timed(work: Callable[[], object]) -> float:
    """Seconds ``work()`` took."""
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def slurm_env() -> dict[str, str]:
    """The environment of Slurm's client commands for the project's cluster."""
    conf = subprocess.run(["bash", "-c", 'source "$1" && printf %s "$SLURM_CONF"', "_",
                           str(SLURM / "env.sh")], capture_output=True, text=True,
                          check=True).stdout
    return {**os.environ, "SLURM_CONF": conf, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def sbatch_round_trip(env: dict[str, str]) -> None:
    """Submit ``sleep 1`` and wait until it left the queue (at most 60 s)."""
    out = subprocess.run(["sbatch", "--parsable", "-t", "1", "--wrap", "sleep 1"], env=env,
                         capture_output=True, text=True, check=True).stdout
    job = out.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                               text=True, check=True).stdout.split()
        if job not in queue:
            return
        time.sleep(0.2)
    raise RuntimeError(f"job {job} still queued after 60 s")


def slurm_down_run(tmp: str) -> None:
    """run.py on docker-slurm while the cluster is stopped: one line, exit 2, no run."""
    subprocess.run(["bash", str(SLURM / "stop.sh")], check=True, capture_output=True)
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "machine=docker-slurm",
                               "fs=scratch", "bench=sleep", "bench.params.seconds=0",
                               f"tracking.uri=sqlite:///{tmp}/down.db",
                               f"tracking.artifact_root={tmp}/down-a", f"hydra.run.dir={tmp}/d"],
                              capture_output=True, text=True, timeout=600, cwd=tmp,
                              env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
        assert proc.returncode == 2 and "controller" in proc.stderr, proc.stderr[-500:]
    finally:
        subprocess.run(["bash", str(SLURM / "start.sh")], check=True, capture_output=True)


def detect_steps_2000() -> None:
    import numpy as np

    from runners.analysis.regress import detect_steps

    rng = np.random.default_rng(11)
    y = 1.0 + 0.05 * rng.standard_normal(2000)
    y[1500:] *= 1.1
    assert detect_steps(y)


def hung_qstat(tmp: str) -> None:
    """The project's CobaltProvider with a qstat that sleeps 120 s, cmd_timeout=1."""
    fake = Path(tmp) / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "qstat").write_text("#!/bin/sh\nsleep 120\n")
    (fake / "qstat").chmod(0o755)
    from parsl_configs.schedulers.cobalt import CobaltProvider

    provider = CobaltProvider(cmd_timeout=1)
    provider.resources["1"] = {"job_id": "1", "status": None}
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{fake}{os.pathsep}{old}"
    try:
        provider.status(["1"])
    finally:
        os.environ["PATH"] = old


def timeout_kill(tmp: str) -> None:
    from runners.stages.measure import run_measured

    code = ("import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "time.sleep(60)")
    m = run_measured([sys.executable, "-c", code], Path(tmp) / "o", Path(tmp) / "e", 1.0)
    assert m.timed_out


def main() -> None:
    """Measure each latency ``--reps`` times; print and record results/latencies.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-slurm", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-latencies-")
    cases: list[tuple[str, float, Callable[[], object]]] = [
        ("detect_steps, 2,000 points", 5.0, detect_steps_2000),
        ("hung qstat (cmd_timeout=1)", 15.0, lambda: hung_qstat(tmp)),
        ("timeout kill (1 s timeout)", 10.0, lambda: timeout_kill(tmp)),
    ]
    was_up = True
    if not args.skip_slurm:
        was_up = subprocess.run(["bash", str(SLURM / "status.sh")],
                                capture_output=True).returncode == 0
        subprocess.run(["bash", str(SLURM / "start.sh")], check=True, capture_output=True)
        env = slurm_env()
        cases[:0] = [
            ("slurm start.sh (already up)", 1.0,
             lambda: subprocess.run(["bash", str(SLURM / "start.sh")], check=True,
                                    capture_output=True)),
            ("sbatch round trip (sleep 1)", 10.0, lambda: sbatch_round_trip(env)),
            ("run.py with Slurm down, to its exit 2", 90.0, lambda: slurm_down_run(tmp)),
        ]
    rows = []
    try:
        for name, budget, work in cases:
            times = [timed(work) for _ in range(args.reps)]
            verdict = "within" if med(times) <= budget else "OVER"
            rows.append(f"| {name} | {med(times):.2f} | {', '.join(f'{t:.2f}' for t in times)}"
                        f" | {budget:g} | {verdict} |")
            print(rows[-1], flush=True)
    finally:
        if not was_up:
            subprocess.run(["bash", str(SLURM / "stop.sh")], check=True, capture_output=True)
    body = ("| latency | median (s) | all (s) | budget (s) | |\n"
            "| --- | ---: | ---: | ---: | --- |\n" + "\n".join(rows) + "\n")
    print(write_result("latencies", body))


if __name__ == "__main__":
    main()
