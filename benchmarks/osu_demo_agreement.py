"""Per-size agreement of mpi4py's own OSU demos, read by patterns (``bench=osu_demo``, a
YAML-only benchmark), with the project's OSU benchmark (``bench=osu``), side by side.

Both run through ``run.py`` on ``machine=local`` with 2 ranks and the same iteration
counts, alternating, ``--reps`` times each, into one store; per message size the median over the runs of each is
compared (ratio demo / osu) for latency and bandwidth, next to each one's run-to-run spread
(max / min over its runs); sizes that differ by more than 10% are listed for explanation,
with whether the difference is larger than the spread of either side.

    python benchmarks/osu_demo_agreement.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

BIN = Path(sys.executable).parent
# bench=osu with the demos' own counts (demo/osu_latency.py: 10,000 timed iterations after
# 1,000 untimed up to 8 KiB; osu_bw.py: 100 after 10, as bench=osu's bw defaults), so that
# what differs is the programs, not the sample size.
OSU = ["bench=osu", "bench.min_size=1", "bench.max_size=4194304"]
OSU_RUNS = {"latency": [*OSU, "bench.tests=[latency]", "bench.iterations=10000",
                        "bench.warmup_iterations=1000"],
            "bw": [*OSU, "bench.tests=[bw]"]}


def run(args: list[str], tmp: str, tag: str) -> None:
    """One run.py run into the benchmark's store."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "bench.trials=1",
                    f"tracking.uri=sqlite:///{tmp}/m.db", f"tracking.artifact_root={tmp}/a",
                    f"hydra.run.dir={tmp}/{tag}"], check=True, capture_output=True, env=env,
                   cwd=tmp)


def curves(tmp: str, experiment: str) -> dict[str, dict[int, list[float]]]:
    """``{metric: {size: [value per run]}}`` of the runs of an experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp}/m.db")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in client.search_runs([exp.experiment_id]):
        for metric in ("osu_latency", "osu_bw"):     # the demo YAML uses osu's names
            for m in client.get_metric_history(r.info.run_id, metric):
                out[metric][m.step].append(m.value)
    return out


def main() -> None:
    """Run both, compare per size, print and record results/osu_demo_agreement.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-osu-demo-")
    for i in range(args.reps):      # alternating, so both see the same machine load
        for test, overrides in OSU_RUNS.items():
            run(overrides, tmp, f"osu-{test}-{i}")
        run(["bench=osu_demo"], tmp, f"demo-{i}")
    ours, demo = curves(tmp, "osu"), curves(tmp, "osu_demo")
    parts = []
    for metric, unit in (("osu_latency", "us"), ("osu_bw", "MB/s")):
        rows, off = [], []
        for size in sorted(set(ours[metric]) & set(demo[metric])):
            a, b = ours[metric][size], demo[metric][size]
            ratio = statistics.median(b) / statistics.median(a)
            spread = max(max(a) / min(a), max(b) / min(b)) - 1
            flag = ""
            if abs(ratio - 1) > 0.10:
                beyond = abs(ratio - 1) > spread
                flag = " **>10%, beyond the spread**" if beyond else " >10%, within the spread"
                off.append(f"{size}{'*' if beyond else ''}")
            rows.append(f"| {size} | {statistics.median(a):.4g} | {statistics.median(b):.4g} | "
                        f"{max(a) / min(a) - 1:.0%} | {max(b) / min(b) - 1:.0%} | "
                        f"{ratio:.2f}{flag} |")
        parts.append(f"### {metric} ({unit}), median of {args.reps} runs each\n\n"
                     "| size (B) | bench=osu | bench=osu_demo | osu spread | demo spread | "
                     "demo / osu |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n"
                     + "\n".join(rows) + "\n\nSizes differing by more than 10% (* beyond "
                     f"the run-to-run spread): {', '.join(off) or 'none'}\n")
    body = "\n".join(parts)
    print(body)
    print(write_result("osu_demo_agreement", body))


if __name__ == "__main__":
    main()
