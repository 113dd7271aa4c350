"""Time to first task result and to a finished run: machine=local vs machine=docker-slurm.

For each run, Parsl's own log gives the moment the DataFlowKernel loaded (``Parsl
version`` line) and the moment the first task's result arrived (``exec_done``); the
wall time of ``python run.py`` gives the finished run.  Machines alternate so both see
the same load.  Target: first result ≤ 3 s after load on the local Slurm.

    python benchmarks/first_result.py [--reps 5]      (cluster/slurm/start.sh first)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402

BIN = Path(sys.executable).parent
STAMP = re.compile(r"^(\d+\.\d+) ")


def one(machine: str, tmp: str, tag: str) -> tuple[float, float]:
    """Run a trivial benchmark; return (load → first result, whole command) in seconds."""
    out = f"{tmp}/{tag}"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run.py"), f"machine={machine}", "fs=scratch",
                    "bench=command", "bench.params.n=1000", "bench.trials=1",
                    f"tracking.uri=sqlite:///{tmp}/m.db", f"tracking.artifact_root={tmp}/a",
                    f"hydra.run.dir={out}"], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    load = first = None
    for line in Path(out, "runinfo", "000", "parsl.log").read_text().splitlines():
        m = STAMP.match(line)
        if m and load is None and "Parsl version" in line:
            load = float(m.group(1))
        if m and first is None and "to exec_done" in line:
            first = float(m.group(1))
    assert load is not None and first is not None, out
    return first - load, wall


def main() -> None:
    """Alternate the machines; write benchmarks/results/first_result.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-first-")
    machines = ["local", "docker-slurm"]
    for m in machines:
        one(m, tmp, f"warm-{m}")
    res: dict[str, list[tuple[float, float]]] = {m: [] for m in machines}
    for i in range(args.reps):
        for m in machines:
            res[m].append(one(m, tmp, f"{m}-{i}"))
    rows = "\n".join(
        f"| {m} | {med([a for a, _ in r]):.2f} | {', '.join(f'{a:.2f}' for a, _ in r)} | "
        f"{med([b for _, b in r]):.2f} | {', '.join(f'{b:.2f}' for _, b in r)} |"
        for m, r in res.items())
    ratio = med([a for a, _ in res["docker-slurm"]]) / med([a for a, _ in res["local"]])
    body = f"""`python run.py machine=<m> bench=command bench.params.n=1000 bench.trials=1`,
{args.reps} repetitions alternating the machines (strategy_period 0.5 s on both).

| machine | load → first result, median (s) | all | whole command, median (s) | all |
| --- | ---: | --- | ---: | --- |
{rows}

Slurm / local ratio of time to first result: {ratio:.2f}. Target on Slurm: ≤ 3 s.
"""
    print(body)
    print(write_result("first_result", body))


if __name__ == "__main__":
    main()
