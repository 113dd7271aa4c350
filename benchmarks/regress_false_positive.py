"""Measure the regression detector on seeded synthetic series; print Markdown tables.

Usage::

    python benchmarks/regress_false_positive.py [--reps 500] [--seed 20260101]

Measures, with :func:`runners.analysis.regress.judge` at its defaults (alpha 0.05, minimum
effect max(1 %, 1.25 x the series' noise), direction "lower"; before the noise-aware rule
a fixed 5 %):

1. the false-positive rate on pure Gaussian noise (no change at all), for series of 10,
   30 and 100 points and a noise CV of 2, 5 and 10 %: the share judged "regression",
   and the share judged anything but "no change" / "not enough data";
2. the detection rate of a step up of 5, 10 and 20 % (the share judged "regression",
   and the share whose reported range brackets the true step within one point);
   ``benchmarks/detector_accuracy.py`` has the full step x noise x points-after table,
   old rule against new;
3. the runtime of :func:`detect_steps` against the series length, and of
   :func:`judge_frame` on 10,000 runs split in 500 series.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from runners.analysis.regress import detect_steps, judge, judge_frame

LENGTHS = (10, 30, 100)
CVS = (0.02, 0.05, 0.10)
STEPS = (0.05, 0.10, 0.20)


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson 95 % interval of a proportion ``k / n``."""
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + half) / (1 + z * z / n)


def noise(rng: np.random.Generator, n: int, cv: float, level: float = 100.0) -> np.ndarray:
    """Gaussian noise around ``level`` with coefficient of variation ``cv``."""
    return level * (1.0 + cv * rng.standard_normal(n))


def false_positives(reps: int, seed: int) -> str:
    """Table 1: alarms on pure noise."""
    lines = ["| length | noise CV | regression | any change | 95 % upper (regression) |",
             "|---:|---:|---:|---:|---:|"]
    for n in LENGTHS:
        for cv in CVS:
            rng = np.random.default_rng([seed, n, int(cv * 1000)])
            status = [judge(noise(rng, n, cv)).status for _ in range(reps)]
            reg = status.count("regression")
            alarms = reg + status.count("improvement")
            lines.append(f"| {n} | {cv:.0%} | {reg / reps:.1%} | {alarms / reps:.1%} | "
                         f"{wilson_upper(reg, reps):.1%} |")
    return "\n".join(lines)


def detection(reps: int, seed: int) -> str:
    """Table 2: a step up at ``n - after`` in a series of ``n = 30`` points."""
    lines = ["| length | points after step | step | noise CV | regression | located ±1 |",
             "|---:|---:|---:|---:|---:|---:|"]
    n = 30
    for after in (5, 10):
        for step in STEPS:
            for cv in CVS:
                rng = np.random.default_rng([seed, after, int(step * 100), int(cv * 1000)])
                reg = located = 0
                for _ in range(reps):
                    y = noise(rng, n, cv)
                    y[n - after :] *= 1.0 + step
                    v = judge(y)
                    reg += v.status == "regression"
                    located += v.status == "regression" and v.index_range is not None and abs(
                        v.index_range[1] - (n - after)) <= 1
                lines.append(f"| {n} | {after} | +{step:.0%} | {cv:.0%} | {reg / reps:.1%} | "
                             f"{located / reps:.1%} |")
    return "\n".join(lines)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def runtimes(seed: int) -> str:
    """Table 3: detect_steps against n, and judge_frame on 10,000 runs / 500 series."""
    rng = np.random.default_rng(seed)
    lines = ["| task | size | wall time (best of 3) |", "|---|---:|---:|"]
    for n in (100, 500, 1000, 2000):
        y = noise(rng, n, 0.05)
        y[n // 2 :] *= 1.2
        for cost in ("l1", "l2"):
            t = best_of(partial(detect_steps, y, cost=cost))
            lines.append(f"| detect_steps ({cost}) | n = {n} | {t * 1e3:.1f} ms |")
    n_series, per = 500, 20
    frames, truth = [], {}
    for s in range(n_series):
        y = noise(rng, per, 0.05)
        truth[(f"m{s % 25}", f"c{s // 25}")] = "no change"
        if s % 10 == 0:  # 10 % of the series regress by 20 %, 5 % improve by 20 %
            y[14:] *= 1.2
            truth[(f"m{s % 25}", f"c{s // 25}")] = "regression"
        elif s % 20 == 1:
            y[14:] *= 0.8
            truth[(f"m{s % 25}", f"c{s // 25}")] = "improvement"
        frames.append(pd.DataFrame({
            "metric": f"m{s % 25}", "config": f"c{s // 25}", "value": y,
            "time": np.arange(per), "run_id": [f"r{s}-{i}" for i in range(per)],
        }))
    df = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    t = best_of(lambda: judge_frame(df, "value", ["metric", "config"], "time",
                                    run_id_col="run_id"))
    out = judge_frame(df, "value", ["metric", "config"], "time", run_id_col="run_id")
    lines.append(f"| judge_frame | {len(df):,} runs, {len(out)} series | {t:.2f} s "
                 f"({t / len(out) * 1e3:.2f} ms/series) |")
    out["truth"] = [truth[k] for k in zip(out["metric"], out["config"], strict=True)]
    confusion = pd.crosstab(out["truth"], out["status"])
    table = ["| truth \\ verdict | " + " | ".join(confusion.columns) + " |",
             "|---|" + "---:|" * len(confusion.columns)]
    table += [f"| {k} | " + " | ".join(str(v) for v in row) + " |"
              for k, row in zip(confusion.index, confusion.to_numpy(), strict=True)]
    return ("\n".join(lines) + "\n\njudge_frame verdicts (20 points per series, step of "
            "±20 % at point 14, noise CV 5 %):\n\n" + "\n".join(table))


def main() -> None:
    """Run the three measurements and print them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=500, help="series per cell")
    parser.add_argument("--seed", type=int, default=20260101)
    args = parser.parse_args()
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"Machine: {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, load {load:.2f}\n")
    print(f"## False positives on pure noise ({args.reps} seeded series per row)\n")
    print(false_positives(args.reps, args.seed))
    print(f"\n## Detection of a step up ({args.reps} seeded series per row)\n")
    print(detection(args.reps, args.seed))
    print("\n## Runtime\n")
    print(runtimes(args.seed))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
