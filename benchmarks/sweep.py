"""Sweep concurrency and per-job overhead of the Parsl launcher, side by side in one run.

1. Concurrency: a 24-job sweep of ``bench=sleep`` (1 s per job) on ``machine=local`` with
   2 workers.  Target: wall ≤ 1.25 × the ideal 12 s + the one-time start-up (a 1-job sweep
   of the same benchmark, minus its 1 s).  Hydra's basic launcher runs the same sweep.
2. Per-job overhead: a 100-job sweep of a no-op (``bench.params.seconds=0``), amortized
   ``(wall(100) - wall(1)) / 99``.  Target ≤ 0.05 s.  In the same run, alternating:
   ReFrame running 100 trivial local tests (benchmarks/reframe_baseline.py).

    python benchmarks/sweep.py [--reps 3] [--skip-basic]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402
from reframe_baseline import ensure_reframe, time_reframe  # noqa: E402

BIN = Path(sys.executable).parent


def sweep(n: int, seconds: float, tmp: str, tag: str, launcher: str = "parsl") -> float:
    """Wall time of ``python run.py -m`` over ``n`` jobs of bench=sleep, in a fresh store."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    points = f"+bench.params.k=range({n})" if n > 1 else "+bench.params.k=0"
    argv = [sys.executable, str(ROOT / "run.py"), "-m", "bench=sleep",
            f"bench.params.seconds={seconds}", points, f"hydra/launcher={launcher}",
            f"tracking.uri=sqlite:///{tmp}/{tag}.db", f"tracking.artifact_root={tmp}/{tag}-a",
            f"hydra.sweep.dir={tmp}/{tag}"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=tmp)
    return time.perf_counter() - t0


def concurrency(tmp: str, reps: int, basic: bool) -> str:
    """The 24 × 1 s sweep against its ideal, and Hydra's basic launcher on the same sweep."""
    rows, walls, starts = [], [], []
    for i in range(reps):
        start = sweep(1, 1.0, tmp, f"c1-{i}") - 1.0
        wall = sweep(24, 1.0, tmp, f"c24-{i}")
        starts.append(start)
        walls.append(wall)
        rows.append(f"| {i} | {start:.2f} | {wall:.2f} | {wall / (12 + start):.2f} |")
    target = 1.25 * 12 + med(starts)
    body = f"""## Concurrency: 24 jobs × 1 s on machine=local (2 workers)

| rep | start-up (1-job sweep − 1 s) | 24-job sweep wall (s) | wall / (12 s + start-up) |
| --- | ---: | ---: | ---: |
{chr(10).join(rows)}

Median: 24-job sweep {med(walls):.2f} s; start-up {med(starts):.2f} s; target ≤ 1.25 × 12 s +
start-up = {target:.2f} s → **{"met" if med(walls) <= target else "NOT met"}**.
"""
    if basic:
        b = sweep(24, 1.0, tmp, "basic24", launcher="basic")
        body += (f"\nHydra's basic launcher, same sweep, one run: {b:.2f} s "
                 f"({b / med(walls):.1f}× the Parsl launcher).\n")
    return body


def overhead(tmp: str, reps: int) -> str:
    """Amortized seconds per no-op job: the Parsl launcher vs ReFrame, alternating."""
    reframe = ensure_reframe(ROOT / ".cache" / "reframe")
    ours, theirs, rows = [], [], []
    for i in range(reps):
        one = sweep(1, 0.0, tmp, f"o1-{i}")
        hundred = sweep(100, 0.0, tmp, f"o100-{i}")
        per_job = (hundred - one) / 99
        rf = time_reframe(reframe, Path(tmp) / f"rf-{i}", 100)
        ours.append(per_job)
        theirs.append(float(rf["per_test_amortized_s"]))
        rows.append(f"| {i} | {one:.2f} | {hundred:.2f} | {per_job:.3f} | "
                    f"{rf['startup_wall_s']:.2f} | {rf['wall_s']:.2f} | "
                    f"{rf['per_test_amortized_s']:.3f} |")
    ratio = med(ours) / med(theirs)
    return f"""## Per-job overhead: 100 no-op jobs (bench=sleep seconds=0) vs ReFrame, 100 trivial tests

| rep | ours: 1 job (s) | ours: 100 jobs (s) | ours per job (s) | ReFrame 1 test (s) | ReFrame 100 tests (s) | ReFrame per test (s) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

Median per job: ours {med(ours):.3f} s, ReFrame {med(theirs):.3f} s (ReFrame {rf["version"]},
serial, lean log); ratio ours / ReFrame = {ratio:.2f}. Target ours ≤ 0.05 s →
**{"met" if med(ours) <= 0.05 else "NOT met"}**. Each of our jobs is a full run: an MLflow
child run with ~60 params, tags, config/results/log artifacts, a psutil-measured trial in a
Parsl worker; a ReFrame test runs `true` and checks a pattern.
"""


def main() -> None:
    """Run both measurements and write benchmarks/results/sweep.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-basic", action="store_true")
    ap.add_argument("--only", choices=["concurrency", "overhead"], default=None)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-sweep-")
    sweep(1, 0.0, tmp, "warm")
    parts = []
    if args.only in (None, "concurrency"):
        parts.append(concurrency(tmp, args.reps, not args.skip_basic))
    if args.only in (None, "overhead"):
        parts.append(overhead(tmp, args.reps))
    body = "\n".join(parts)
    print(body)
    if args.only is None:
        print(write_result("sweep", body))


if __name__ == "__main__":
    main()
