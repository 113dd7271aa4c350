"""``run.py`` start-up and a sweep's per-job overhead: this checkout against another one
(e.g. the commit before a restructuring), side by side, alternating, in one run.

For each checkout (each with its own ``.venv``, made by ``make setup`` there):

* ``dry run``: ``python run.py dry_run=true`` (compose, validate, plan; no Parsl, no
  MLflow): the start-up a user waits for before anything runs;
* ``no-op run``: ``python run.py bench=sleep bench.params.seconds=0 bench.trials=1``, a
  whole run (Parsl, MLflow, one trial);
* ``per job``: ``(wall(100-job sweep) - wall(1-job sweep)) / 99`` of no-op jobs.

Target: no worse than the baseline by more than 5%.

    python benchmarks/startup.py --baseline ../baseline [--reps 5] [--jobs 100]
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


def wall(checkout: Path, args: list[str], tmp: str, tag: str) -> float:
    """Seconds of ``run.py <args>`` of a checkout, with its own venv, into a fresh store."""
    python = checkout / ".venv" / "bin" / "python"
    env = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONDONTWRITEBYTECODE", None)    # as users run it: bytecode cached
    argv = [str(python), str(checkout / "run.py"), *args,
            f"tracking.uri=sqlite:///{tmp}/{tag}.db", f"tracking.artifact_root={tmp}/{tag}-a",
            f"hydra.run.dir={tmp}/{tag}-run", f"hydra.sweep.dir={tmp}/{tag}-sweep"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=tmp)
    return time.perf_counter() - t0


def measure(checkout: Path, tmp: str, tag: str, jobs: int) -> dict[str, float]:
    """The three figures of one checkout, once."""
    noop = ["bench=sleep", "bench.params.seconds=0", "bench.trials=1"]
    one = wall(checkout, ["-m", *noop, "+bench.params.k=0"], tmp, f"{tag}-s1")
    many = wall(checkout, ["-m", *noop, f"+bench.params.k=range({jobs})"], tmp, f"{tag}-sN")
    return {"dry run": wall(checkout, ["dry_run=true"], tmp, f"{tag}-dry"),
            "no-op run": wall(checkout, noop, tmp, f"{tag}-run"),
            "per job": (many - one) / (jobs - 1)}


def main() -> None:
    """Alternate the two checkouts ``--reps`` times; print and record results/startup.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, type=Path, help="the other checkout")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=100)
    args = ap.parse_args()
    base = args.baseline.resolve()
    commit = subprocess.run(["git", "-C", str(base), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    here = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="bench-startup-")
    for checkout in (ROOT, base):               # warm caches (bytecode, the store schema)
        wall(checkout, ["dry_run=true"], tmp, "warm")
    figures: dict[str, dict[str, list[float]]] = {"this": {}, "baseline": {}}
    for i in range(args.reps):
        for name, checkout in (("this", ROOT), ("baseline", base)):
            for key, value in measure(checkout, tmp, f"{name}{i}", args.jobs).items():
                figures[name].setdefault(key, []).append(value)
        print(f"rep {i}: " + "; ".join(f"{n} {k} {v[-1]:.3f}" for n in figures
                                       for k, v in figures[n].items()), flush=True)
    rows = []
    for key in ("dry run", "no-op run", "per job"):
        a, b = med(figures["this"][key]), med(figures["baseline"][key])
        verdict = "met" if a <= 1.05 * b else "**NOT met**"
        ratios = [x / y for x, y in
                  zip(figures["this"][key], figures["baseline"][key], strict=True)]
        rows.append(f"| {key} | {a:.3f} | {b:.3f} | {a / b:.3f} | "
                    f"{min(ratios):.2f}–{max(ratios):.2f} | {verdict} |")
    body = (f"This checkout ({here}) against the baseline {base} ({commit}), median of "
            f"{args.reps} alternating repetitions; per job over {args.jobs}-job sweeps.\n\n"
            "| figure (s) | this | baseline | this / baseline | per-rep ratios | target ≤ 1.05 |\n"
            "| --- | ---: | ---: | ---: | --- | --- |\n" + "\n".join(rows) + "\n")
    print(body)
    print(write_result("startup", body))


if __name__ == "__main__":
    main()
