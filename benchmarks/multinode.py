"""Multi-node figures on the local 4-node Slurm cluster, side by side, alternating, in one run.

* ``staging 4 nodes / 1 node``: copying the cached mpi4py-import environment onto the
  node-local /dev/shm of 4 nodes (one task per node, in parallel, as a run does) against
  onto 1 node, each into a fresh directory; target <= 1.5.
* ``run.py / bare srun``: the median ``total_s`` a 4-node, 4-rank ``mpi4py_import`` run
  reports against the wall time of the same ``srun`` line run bare inside a 4-node
  allocation; target within +-5 %.
* ``telemetry on / off``: the median ``total_s`` of the same run with per-node telemetry
  on and off; target within +-2 %.

The nodes are namespaces of one 2-core host: they share its cores, so these figures say
how the product behaves, not what a real interconnect does.

    python benchmarks/multinode.py [--reps 5] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402

from runners.stages import node_copy  # noqa: E402
from runners.stages.node_copy import archive_of  # noqa: E402

SLURM = ROOT / "cluster" / "slurm"
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           SLURM_CONF=str(ROOT / ".cluster" / "slurm" / "etc" / "slurm.conf"))


def run_py(tmp: str, tag: str, trials: int, *extra: str) -> tuple[float, str]:
    """Median total_s of a 4-node mpi4py_import run, and its environment's directory."""
    db = f"{tmp}/{tag}.db"
    subprocess.run([sys.executable, str(ROOT / "run.py"), "machine=docker-slurm",
                    "machine.nodes=4", "machine.ranks_per_node=1", "bench.ranks=4", "fs=scratch",
                    f"bench.trials={trials}", "bench.strace=false", f"tracking.uri=sqlite:///{db}",
                    f"tracking.artifact_root={tmp}/{tag}-a", f"hydra.run.dir={tmp}/{tag}", *extra],
                   check=True, capture_output=True, env=ENV, cwd=tmp)
    with sqlite3.connect(db) as con:
        values = [v for (v,) in con.execute("select value from metrics where key='total_s'")]
        env_dir = con.execute("select value from tags where key='env.hash'").fetchone()[0]
    return med(values), env_dir


def in_allocation(script: str, nodes: int = 4) -> list[str]:
    """Run ``script`` (bash) inside a ``nodes``-node allocation; its output lines."""
    out = subprocess.run(["salloc", "-N", str(nodes), "--quiet", "bash", "-c", script],
                         check=True, capture_output=True, text=True, env=ENV, timeout=600)
    return out.stdout.split()


def bare_srun(env_dir: str, trials: int) -> float:
    """Median wall of the trial's srun line run bare in a 4-node allocation."""
    line = (f"srun --mpi=pmi2 --kill-on-bad-exit=1 -N 4 -n 4 {env_dir}/bin/python "
            f"{ROOT}/runners/benches/mpi4py_import.py numpy >/dev/null")
    script = (f"for i in $(seq {trials}); do s=$(date +%s.%N); {line}; "
              "e=$(date +%s.%N); awk \"BEGIN {print $e - $s}\"; done")
    return med([float(x) for x in in_allocation(script)])


def staging(env_dir: str, nodes: int) -> float:
    """Wall of staging ``env_dir`` onto a fresh node-local directory of ``nodes`` nodes."""
    dst = f"/dev/shm/bench-stage-{uuid.uuid4().hex[:8]}"
    copy = (f"srun --mpi=none -N {nodes} -n {nodes} --ntasks-per-node=1 {sys.executable} -I -S "
            f"{node_copy.__file__} {env_dir} {dst}/{Path(env_dir).name} "
            f"{archive_of(Path(env_dir), 600)} 600")
    script = (f"cd {ROOT}; s=$(date +%s.%N); {copy} >/dev/null; e=$(date +%s.%N); "
              f"awk \"BEGIN {{print $e - $s}}\"; srun -N {nodes} -n {nodes} --ntasks-per-node=1 "
              f"rm -rf {dst}")
    return float(in_allocation(script, nodes)[0])


def srun_true(nodes: int) -> float:
    """Wall of an empty one-task-per-node step: what the launcher alone costs."""
    script = (f"s=$(date +%s.%N); srun --mpi=none -N {nodes} -n {nodes} --ntasks-per-node=1 "
              f"true; e=$(date +%s.%N); awk \"BEGIN {{print $e - $s}}\"")
    return float(in_allocation(script, nodes)[0])


def main() -> None:
    """Alternate the pairs ``--reps`` times; print and record results/multinode.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    up = subprocess.run(["bash", str(SLURM / "start.sh"), "--nodes", "4"], capture_output=True,
                        text=True, env=ENV)
    if up.returncode != 0:
        raise SystemExit(f"start.sh --nodes 4 failed: {up.stderr.strip().splitlines()[-1:]}")
    rows: dict[str, list[float]] = {k: [] for k in (
        "srun true 1 node", "srun true 4 nodes", "stage 1 node", "stage 4 nodes",
        "run.py total_s", "bare srun", "telemetry on",
        "telemetry off")}
    with tempfile.TemporaryDirectory(prefix="bench-multinode-") as tmp:
        for i in range(args.reps):
            off, env_hash = run_py(tmp, f"off{i}", args.trials)
            on, _ = run_py(tmp, f"on{i}", args.trials, "telemetry.enabled=true")
            env_dir = next(p for p in (ROOT / ".cache" / "envs").glob(f"*-{env_hash}")
                           if p.is_dir()) if (ROOT / ".cache").is_dir() else None
            if env_dir is None:
                raise SystemExit("the mpi4py-import environment was not found under .cache/envs")
            bare = bare_srun(str(env_dir), args.trials)
            one, four = staging(str(env_dir), 1), staging(str(env_dir), 4)
            for key, value in (("srun true 1 node", srun_true(1)),
                               ("srun true 4 nodes", srun_true(4)),
                               ("stage 1 node", one), ("stage 4 nodes", four),
                               ("run.py total_s", off), ("bare srun", bare),
                               ("telemetry on", on), ("telemetry off", off)):
                rows[key].append(value)
            print(f"rep {i}: " + json.dumps({k: round(v[-1], 3) for k, v in rows.items()}),
                  flush=True)
            time.sleep(1)
    m = {k: med(v) for k, v in rows.items()}
    ratios = [("staging 4 nodes / 1 node", m["stage 4 nodes"] / m["stage 1 node"], "<= 1.5"),
              ("srun true 4 nodes / 1 node (the launcher alone)",
               m["srun true 4 nodes"] / m["srun true 1 node"], "reference"),
              ("run.py total_s / bare srun", m["run.py total_s"] / m["bare srun"],
               "within 0.95-1.05"),
              ("telemetry on / off (total_s)", m["telemetry on"] / m["telemetry off"],
               "within 0.98-1.02")]
    table = ["| figure | median (s) | all reps (s) |", "| --- | --- | --- |"]
    table += [f"| {k} | {m[k]:.3f} | {', '.join(f'{x:.3f}' for x in v)} |"
              for k, v in rows.items()]
    table += ["", "| ratio | value | target |", "| --- | --- | --- |"]
    table += [f"| {name} | {value:.3f} | {target} |" for name, value, target in ratios]
    body = (f"`python benchmarks/multinode.py --reps {args.reps} --trials {args.trials}` "
            "(4-node local Slurm cluster; nodes share this host's 2 cores)\n\n"
            + "\n".join(table))
    print(body)
    print(f"recorded in {write_result('multinode', body)}")


if __name__ == "__main__":
    main()
