"""Load on the MLflow tracking server of cluster/mlflow/ (PostgreSQL backend store).

Starts nothing: expects the server up (``cluster/mlflow/start.sh``) at ``--uri``
(default ``$MLFLOW_TRACKING_URI``, else http://127.0.0.1:5055). Measures

* per-call latency from one client: ``log_metric`` (1 point), ``log_batch`` (100 and
  1,000 points), ``get_run``;
* ``--drivers`` concurrent driver processes, each creating a run, logging ``--points``
  metric points in batches of each size in ``--batch``, and ending it FINISHED, all
  released together by a barrier (interpreter start-up and imports are not timed): wall
  time, runs/s, points/s, and the points read back (lost = logged but not found);
* the memory of the server processes (RSS and PSS), when their pid files are readable.

Prints Markdown tables; ``--write`` also saves them as results/server_load.md.

    python benchmarks/server_load.py [--drivers 20] [--points 1000] [--batch 1000,100,10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_line, med, require_server, write_result  # noqa: E402

KEY = "m"
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" lines


def value(driver: int, step: int) -> float:
    """The value driver ``driver`` logs at ``step`` (checked when read back)."""
    return driver * 1_000_000 + step + 0.5


def driver(idx: int, uri: str, tasks: Any, results: Any, barrier: Any) -> None:
    """One driver process: for each task, wait for the others, then log one whole run."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)  # connection and imports warm
    while (task := tasks.get()) is not None:
        exp_id, points, batch = task
        barrier.wait()
        t0 = time.perf_counter()
        try:
            run_id = client.create_run(exp_id, run_name=f"driver-{idx}").info.run_id
            now = int(time.time() * 1000)
            for lo in range(0, points, batch):
                client.log_batch(run_id, metrics=[
                    Metric(KEY, value(idx, s), now + s, s)
                    for s in range(lo, min(lo + batch, points))])
            client.set_terminated(run_id, "FINISHED")
            results.put((idx, run_id, time.perf_counter() - t0, ""))
        except Exception as exc:  # reported, counted as lost
            results.put((idx, "", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(uri: str, calls: int, batch_calls: int) -> str:
    """Per-call latency of the common client calls, one client, sequential."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(f"server-load-latency-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(exp_id).info.run_id
    now = int(time.time() * 1000)
    step = 0

    def one_metric() -> None:
        nonlocal step
        client.log_metric(run_id, "single", float(step), timestamp=now, step=step)
        step += 1

    def batch_of(n: int):  # noqa: ANN202
        def call() -> None:
            nonlocal step
            client.log_batch(run_id, metrics=[Metric(f"batch{n}", float(s), now, s)
                                              for s in range(step, step + n)])
            step += n
        return call

    rows = []
    for name, fn, n_calls, n_points in [
        ("log_metric (1 point)", one_metric, calls, 1),
        ("log_batch (100 points)", batch_of(100), batch_calls, 100),
        ("log_batch (1,000 points)", batch_of(1000), batch_calls, 1000),
        ("get_run", lambda: client.get_run(run_id), calls, 0),
    ]:
        for _ in range(3):  # warm-up
            fn()
        times = []
        for _ in range(n_calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        per_point = f"{med(times) / n_points * 1e6:,.0f} µs" if n_points else "–"
        rows.append(f"| {name} | {n_calls} | {med(times) * 1e3:.1f} | "
                    f"{pct(times, 0.95) * 1e3:.1f} | {statistics.mean(times) * 1e3:.1f} | "
                    f"{per_point} |")
    client.set_terminated(run_id, "FINISHED")
    return "\n".join(["| call | calls | median ms | p95 ms | mean ms | per point |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |", *rows])


def load(uri: str, drivers: int, points: int, batches: list[int]) -> str:
    """``drivers`` concurrent runs of ``points`` points, once per batch size."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(drivers + 1)
    results = ctx.Queue()
    queues = [ctx.Queue() for _ in range(drivers)]
    procs = [ctx.Process(target=driver, args=(i, uri, queues[i], results, barrier), daemon=True)
             for i in range(drivers)]
    for p in procs:
        p.start()
    rows = []
    try:
        for batch in batches:
            exp_id = client.create_experiment(
                f"server-load-{drivers}x{points}-b{batch}-{uuid.uuid4().hex[:8]}")
            for q in queues:
                q.put((exp_id, points, batch))
            barrier.wait(timeout=600)  # every driver has imported mlflow and is ready
            t0 = time.perf_counter()
            got = [results.get(timeout=600) for _ in range(drivers)]
            wall = time.perf_counter() - t0
            errors = [err for _, _, _, err in got if err]
            found = 0
            for idx, run_id, _, err in got:
                if err:
                    continue
                run = client.get_run(run_id)
                history = client.get_metric_history(run_id, KEY)
                want = {(s, value(idx, s)) for s in range(points)}
                found += len(want & {(m.step, m.value) for m in history})
                if run.info.status != "FINISHED":
                    errors.append(f"run {run_id} is {run.info.status}")
            per_run = [dt for _, _, dt, _ in got]
            lost = drivers * points - found
            rows.append(
                f"| {drivers} × {points:,} | {batch} | {points // batch + 2} | {wall:.2f} | "
                f"{drivers / wall:.1f} | {drivers * points / wall:,.0f} | "
                f"{med(per_run):.2f} / {max(per_run):.2f} | {lost} |")
            for err in errors[:5]:
                print(f"  error (batch {batch}): {err}", file=sys.stderr)
    finally:
        for q in queues:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return "\n".join([
        "| drivers × points | batch | calls per run | wall s | runs/s | points/s "
        "| run s (median / max) | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows])


def memory() -> str:
    """RSS / PSS of the server's processes (from the pid files of cluster/mlflow/start.sh)."""
    import psutil

    state = Path(os.environ.get("BENCH_CLUSTER_DIR", ROOT / ".cluster")) / "mlflow"
    rows = []
    for name, pidfile in [("mlflow server (+ uvicorn worker)", state / "mlflow.pid"),
                          ("PostgreSQL (postmaster + backends)", state / "pgdata" / "postmaster.pid")]:
        try:
            parent = psutil.Process(int(pidfile.read_text().split()[0]))
            procs = [parent, *parent.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs)
            pss = sum(p.memory_full_info().pss for p in procs)
        except (OSError, ValueError, IndexError, psutil.Error) as exc:
            rows.append(f"| {name} | – | – | – ({type(exc).__name__}) |")
            continue
        rows.append(f"| {name} | {len(procs)} | {rss / 2**20:,.0f} | {pss / 2**20:,.0f} |")
    return "\n".join(["| processes | count | RSS MiB | PSS MiB |",
                      "| --- | ---: | ---: | ---: |", *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                    "http://127.0.0.1:5055"))
    ap.add_argument("--drivers", type=int, default=20)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--batch", default="1000,100,10",
                    help="comma-separated batch sizes, one load round each (max 1000)")
    ap.add_argument("--calls", type=int, default=200, help="calls per single-call latency")
    ap.add_argument("--batch-calls", type=int, default=30, help="calls per batch latency")
    ap.add_argument("--write", action="store_true", help="also write results/server_load.md")
    args = ap.parse_args()
    require_server(args.uri)
    batches = [int(b) for b in args.batch.split(",")]

    body = "\n\n".join([
        f"Server {args.uri} (cluster/mlflow/: PostgreSQL backend, --workers 1).",
        "## Per-call latency (one client, sequential)",
        latency(args.uri, args.calls, args.batch_calls),
        f"## {args.drivers} concurrent drivers (processes), one run each",
        load(args.uri, args.drivers, args.points, batches),
        "## Server memory (after the load)",
        memory(),
    ])
    print(f"{machine_line()}\n\n{body}")
    if args.write:
        print(f"\nwritten to {write_result('server_load', body)}")


if __name__ == "__main__":
    main()
