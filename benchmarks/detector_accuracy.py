"""Precision and recall of ``bench regress``'s detector on seeded synthetic series.

Usage::

    python benchmarks/detector_accuracy.py [--reps 500] [--seed 20261202] [--no-write]

Every series is 20 baseline points of Gaussian noise around 100 (coefficient of
variation ``cv``), then a step up by ``step`` followed by ``after`` points, judged by
:func:`runners.analysis.regress.judge` with direction "lower" (so a step up is a
regression).  Two rules side by side, on the same series:

- **new**: the defaults, a noise-aware minimum effect ``max(1 %, 1.25 x noise)``, a
  detected step tested at ``alpha / 10``, and with no accepted step the last 3 points
  tried alone and the last 10, 20 ... at ``alpha / 5``;
- **old**: the fixed 5 % minimum effect of before (``min_effect=0.05, noise_factor=0``).

Printed (and written to ``benchmarks/results/detector_accuracy.md``):

1. detection rate (share judged "regression") per step x noise x points after;
2. the share of the detected steps whose reported range brackets the true step
   (``index_before < 20 <= index_after``);
3. false alarms on pure noise (no step) for series of 10, 30 and 100 points at 1, 2, 5
   and 10 % noise, with the upper end of the Wilson 95 % interval;
4. why the new rule misses at 3 points after: the first gate that the reported windows
   failed (a step not accepted gives the fallback windows, the last 5 points; the
   Mann-Whitney p, the minimum effect, the leave-one-out "hinges" check);
5. judge_frame's time on 500 series x 20 points.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runners.analysis.regress import Verdict, judge, judge_frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, write_result  # noqa: E402
from regress_false_positive import wilson_upper  # noqa: E402

RULES: dict[str, dict[str, Any]] = {"new": {}, "old": {"min_effect": 0.05, "noise_factor": 0.0}}
STEPS = (0.03, 0.05, 0.075, 0.10, 0.20)
CVS = (0.01, 0.02, 0.05)
AFTERS = (3, 5, 10)
BASE = 20
FA_LENGTHS = (10, 30, 100)
FA_CVS = (0.01, 0.02, 0.05, 0.10)
TARGETS = {(0.075, 0.02, 5), (0.10, 0.02, 5), (0.20, 0.02, 5), (0.10, 0.05, 10),
           (0.20, 0.05, 10), (0.20, 0.05, 3)}
"""Cells with a recall target of 95 % (steps of 7.5 % and more at 2 % noise with 5 points
after; 10 % at 5 % noise with 10 after; 20 % at 5 % noise with 3 after)."""


def step_series(rng: np.random.Generator, step: float, cv: float, after: int) -> np.ndarray:
    """``BASE`` points at level 100, then ``after`` points at ``100 * (1 + step)``."""
    y = 100.0 * (1.0 + cv * rng.standard_normal(BASE + after))
    y[BASE:] *= 1.0 + step
    return y


def brackets(v: Verdict) -> bool:
    """Whether the reported change range contains the true step."""
    return v.index_range is not None and v.index_range[0] < BASE <= v.index_range[1]


def why_missed(v: Verdict, alpha: float = 0.05) -> str:
    """The first gate a missed step failed."""
    where = "at a step" if v.step_detected else "fallback windows"
    if v.p_value >= alpha:
        return f"{where}: p >= alpha"
    if abs(v.effect) < v.threshold:
        return f"{where}: effect < minimum"
    return f"{where}: hinges on one point"


def recall(reps: int, seed: int) -> tuple[str, str, str]:
    """Tables 1, 2 and 4."""
    head = "| noise | after | " + " | ".join(f"+{s:.1%}".replace(".0%", "%") for s in STEPS)
    rate = [head + " |", "|---:|---:|" + "---:|" * len(STEPS)]
    loc = [head + " |", "|---:|---:|" + "---:|" * len(STEPS)]
    missed: collections.Counter[str] = collections.Counter()
    for cv in CVS:
        for after in AFTERS:
            cells, places = [], []
            for step in STEPS:
                rng = np.random.default_rng([seed, int(step * 1000), int(cv * 1000), after])
                hits = {r: 0 for r in RULES}
                found = 0
                for _ in range(reps):
                    y = step_series(rng, step, cv, after)
                    for rule, kw in RULES.items():
                        v = judge(y, **kw)
                        hit = v.status == "regression"
                        hits[rule] += hit
                        if rule == "new":
                            found += hit and brackets(v)
                            if not hit and after == 3 and step >= 0.075:
                                missed[why_missed(v)] += 1
                new, old = hits["new"] / reps, hits["old"] / reps
                mark = "**" if (step, cv, after) in TARGETS else ""
                cells.append(f"{mark}{new:.0%}{mark} ({old:.0%})")
                places.append(f"{found / max(hits['new'], 1):.0%}" if hits["new"] else "–")
            rate.append(f"| {cv:.0%} | {after} | " + " | ".join(cells) + " |")
            loc.append(f"| {cv:.0%} | {after} | " + " | ".join(places) + " |")
    total = sum(missed.values())
    why = ["| why a step of 7.5 % or more with 3 points after was missed (new rule) | share |",
           "|---|---:|"]
    why += [f"| {k} | {n} ({n / total:.0%}) |" for k, n in missed.most_common()]
    return "\n".join(rate), "\n".join(loc), "\n".join(why)


def false_alarms(reps: int, seed: int) -> str:
    """Table 3: pure noise."""
    lines = ["| length | noise | regression new (old) | any change new (old) | "
             "95 % upper, new |", "|---:|---:|---:|---:|---:|"]
    for n in FA_LENGTHS:
        for cv in FA_CVS:
            rng = np.random.default_rng([seed, n, int(cv * 1000), 1])
            counts = {r: collections.Counter[str]() for r in RULES}
            for _ in range(reps):
                y = 100.0 * (1.0 + cv * rng.standard_normal(n))
                for rule, kw in RULES.items():
                    counts[rule][judge(y, **kw).status] += 1
            reg = {r: c["regression"] for r, c in counts.items()}
            anyc = {r: c["regression"] + c["improvement"] for r, c in counts.items()}
            lines.append(f"| {n} | {cv:.0%} | {reg['new'] / reps:.1%} ({reg['old'] / reps:.1%}) "
                         f"| {anyc['new'] / reps:.1%} ({anyc['old'] / reps:.1%}) | "
                         f"{wilson_upper(reg['new'], reps):.1%} |")
    return "\n".join(lines)


def frame_time(seed: int) -> str:
    """judge_frame over 500 series x 20 points, new vs old rule (best of 3)."""
    rng = np.random.default_rng(seed)
    parts = []
    for s in range(500):
        y = 100.0 * (1.0 + 0.05 * rng.standard_normal(20))
        if s % 10 == 0:
            y[14:] *= 1.2
        parts.append(pd.DataFrame({"series": s, "value": y, "t": np.arange(20)}))
    df = pd.concat(parts, ignore_index=True)
    out = []
    for rule, kw in RULES.items():
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            judge_frame(df, "value", "series", "t", **kw)
            best = min(best, time.perf_counter() - t0)
        out.append(f"{rule} {best:.2f} s ({best / 500 * 1e3:.2f} ms/series)")
    return "judge_frame, 500 series x 20 points, best of 3: " + ", ".join(out)


def main() -> None:
    """Measure, print, and record the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=500, help="series per cell")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rate, loc, why = recall(args.reps, args.seed)
    body = "\n".join([
        f"{args.reps} seeded series per cell; {BASE} baseline points, then a step up; "
        "judge's defaults, direction lower. New rule: minimum effect max(1 %, 1.25 x "
        "noise), a detected step tested at alpha/10, and with no accepted step the last 3 "
        "points also tried alone (minimum effect sqrt(5/3) higher) and the last 10, 20 ... "
        "at alpha/5; old: fixed 5 % (in brackets), min_effect=0.05, "
        "noise_factor=0. Cells in bold have a 95 % target.", "",
        "## Detection rate: step x noise x points after the step", "", rate, "",
        "## Detected steps whose reported range brackets the true step (new rule)", "",
        loc, "", "## False alarms on pure noise", "", false_alarms(args.reps, args.seed), "",
        "## What costs recall at 3 points after", "", why, "",
        "The step penalty rarely accepts a step followed by only 3 points, so these are "
        "judged on the fallback windows; the last 5 points then hold 2 baseline points "
        "(hence p >= alpha). The last 3 alone pass for most; of those that do not, about "
        "two thirds fail the leave-one-out check (2 points against 20: the Mann-Whitney p "
        "moves in coarse steps, 0.035 -> 0.052) and a third the minimum effect. Dropping "
        "that check for the 3-point window gains 1 point of recall and costs 0.3-0.6 "
        "points of false alarms, so it stays.", "",
        "## Speed", "", frame_time(args.seed), "",
        f"(total {time.perf_counter() - t0:.0f} s)",
    ])
    print(machine_line() + "\n\n" + body)
    if not args.no_write:
        print(f"\nwritten to {write_result('detector_accuracy', body)}")


if __name__ == "__main__":
    main()
