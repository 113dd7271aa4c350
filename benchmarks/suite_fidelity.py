"""Benchmark-suite fidelity: what the runner reports vs the same programs run by hand.

- OSU latency and bandwidth (2 ranks) through ``python run.py bench=osu`` vs
  ``mpiexec -n 2 python osu.py latency|bw`` run bare, alternating, per message size.
  Target: within 5% at every size.
- ``parsl-perf`` through ``python run.py bench=parsl_perf`` vs ``parsl-perf`` by hand on
  the same generated config module.  Target: at least 0.9x the tasks/s.

    python benchmarks/suite_fidelity.py [--reps 3] [--perf-time 5]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def runner(args: list[str], tmp: str, tag: str) -> str:
    """Run ``run.py`` with a private store; return its output directory."""
    out = f"{tmp}/{tag}"
    subprocess.run([sys.executable, str(ROOT / "run.py"), *args,
                    f"tracking.uri=sqlite:///{tmp}/m.db", f"tracking.artifact_root={tmp}/a",
                    f"hydra.run.dir={out}"], check=True, env=ENV, capture_output=True)
    return out


def osu_rows(results_csv: str) -> dict[tuple[str, int], float]:
    """Median value per (test, size) from the runner's results.csv."""
    import csv

    vals: dict[tuple[str, int], list[float]] = defaultdict(list)
    with open(results_csv) as fh:
        for row in csv.DictReader(fh):
            vals[(row["name"], int(row["step"]))].append(float(row["value"]))
    return {k: med(v) for k, v in vals.items()}


def bare_osu(env_dir: str, test: str, max_size: int) -> dict[tuple[str, int], float]:
    """One bare ``mpiexec -n 2 python osu.py <test>`` run."""
    out = subprocess.run([f"{env_dir}/bin/mpiexec", "-n", "2", f"{env_dir}/bin/python",
                          str(ROOT / "runners" / "benches" / "osu.py"), test, "--max-size",
                          str(max_size)], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    return {(r["name"], r["step"]): r["value"] for r in rows}


def perf_rate(text: str) -> float:
    """The last 'Tasks per second' of parsl-perf output."""
    return float(re.findall(r"Tasks per second: ([\d.]+)", text)[-1])


def main() -> None:
    """Measure both comparisons and write benchmarks/results/suite_fidelity.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-size", type=int, default=1 << 20)
    ap.add_argument("--perf-time", type=float, default=5.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-fidelity-")
    osu = ["bench=osu", "bench.tests=[latency,bw]", f"bench.max_size={args.max_size}",
           "bench.trials=1"]
    runner(osu, tmp, "warm")
    env_dir = sorted(p for p in glob.glob(str(ROOT / ".cache" / "envs" / "mpi4py-import-*"))
                     if not p.endswith(".lock"))[-1]
    through: dict[tuple[str, int], list[float]] = defaultdict(list)
    bare: dict[tuple[str, int], list[float]] = defaultdict(list)
    perf_runner: list[float] = []
    perf_bare: list[float] = []
    for i in range(args.reps):
        for k, v in osu_rows(runner(osu, tmp, f"osu-{i}") + "/results.csv").items():
            through[k].append(v)
        for test in ("latency", "bw"):
            for k, v in bare_osu(env_dir, test, args.max_size).items():
                bare[k].append(v)
        out = runner(["bench=parsl_perf", f"bench.time={args.perf_time}"], tmp, f"perf-{i}")
        perf_runner.append(perf_rate(Path(out, "stages/bench/trial-0.stdout.log").read_text()))
        module = glob.glob(f"{out}/parsl_config_*.py")[0]
        text = subprocess.run([str(BIN / "parsl-perf"), "--config", module, "--time",
                               str(args.perf_time)], check=True, capture_output=True, text=True,
                              env=ENV, cwd=tmp).stdout
        perf_bare.append(perf_rate(text))
    lines = ["| test | size (B) | runner | bare | ratio |", "| --- | ---: | ---: | ---: | ---: |"]
    worst = 0.0
    for key in sorted(through):
        r, b = med(through[key]), med(bare[key])
        worst = max(worst, abs(r / b - 1))
        lines.append(f"| {key[0]} | {key[1]} | {r:.3f} | {b:.3f} | {r / b:.3f} |")
    ratio = med(perf_runner) / med(perf_bare)
    body = f"""OSU through `python run.py bench=osu` vs `mpiexec -n 2 python osu.py` run bare,
{args.reps} alternating repetitions, medians (latency in µs, bandwidth in MB/s).
Largest deviation at any size: **{worst * 100:.1f}%** (target ≤ 5%).

{chr(10).join(lines)}

parsl-perf (`--time {args.perf_time}`) on the same generated config module:

| how | tasks/s (median) | all |
| --- | ---: | --- |
| through the runner | {med(perf_runner):.0f} | {', '.join(f'{x:.0f}' for x in perf_runner)} |
| by hand | {med(perf_bare):.0f} | {', '.join(f'{x:.0f}' for x in perf_bare)} |
| **ratio** | **{ratio:.2f}** | target ≥ 0.9 |
"""
    print(body)
    print(write_result("suite_fidelity", body))


if __name__ == "__main__":
    main()
