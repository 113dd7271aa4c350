"""The real MLflow tracking server on a private PostgreSQL (cluster/mlflow/).

Starts the server with ``cluster/mlflow/start.sh`` (once for the module), logs through the
REST API with ``MlflowClient``, checks the rows in PostgreSQL with ``psql`` and the proxied
artifacts on disk, runs 8 concurrent writer processes and 24 concurrent log_batch threads,
then stops and restarts the server to check that the runs persist (the server fixture is
in tests/servers.py). A server that cannot be started fails the tests; nothing here skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, Server, script, start

pytestmark = pytest.mark.server

N_WORKERS = 8
N_WORKER_POINTS = 200


def test_status_up(server: Server) -> None:
    proc = script("status.sh", server.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert server.uri in proc.stdout


def test_run_round_trip(server: Server, tmp_path: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    client = server.client()
    exp_id = client.create_experiment(f"server-roundtrip-{uuid.uuid4().hex[:8]}")
    assert client.get_experiment(exp_id).artifact_location == f"mlflow-artifacts:/{exp_id}"
    run = client.create_run(exp_id, run_name="roundtrip", tags={"suite": "server"})
    rid = run.info.run_id

    now = int(time.time() * 1000)
    points = [Metric("loss", 1.0 / (i + 1), now + i, i) for i in range(1000)]
    client.log_batch(rid, metrics=points)  # 1000 = the per-request metric limit
    client.log_batch(rid, params=[Param("lr", "0.01"), Param("ranks", "2")],
                     tags=[RunTag("phase", "test")])
    client.log_metric(rid, "throughput", 123.5, step=0)

    report = tmp_path / "report.txt"
    report.write_text("proxied artifact\n")
    client.log_artifact(rid, str(report), artifact_path="reports")
    client.set_terminated(rid, "FINISHED")

    # Read it all back through the server.
    got = client.get_run(rid)
    assert got.info.status == "FINISHED"
    assert got.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{rid}/artifacts"
    assert got.data.params == {"lr": "0.01", "ranks": "2"}
    assert got.data.tags["suite"] == "server" and got.data.tags["phase"] == "test"
    assert got.data.metrics == {"loss": 1.0 / 1000, "throughput": 123.5}
    history = sorted(client.get_metric_history(rid, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (p.step, p.value, p.timestamp) for p in points]
    assert [a.path for a in client.list_artifacts(rid, "reports")] == ["reports/report.txt"]
    dst = tmp_path / "download"
    dst.mkdir()
    local = client.download_artifacts(rid, "reports/report.txt", str(dst))
    assert Path(local).read_text() == "proxied artifact\n"

    # The artifact went through the server into the state dir, ...
    on_disk = server.state / "artifacts" / exp_id / rid / "artifacts" / "reports" / "report.txt"
    assert on_disk.read_text() == "proxied artifact\n"
    # ... and the run is really in PostgreSQL.
    assert server.psql(f"select status from runs where run_uuid = '{rid}'") == "FINISHED"
    assert server.psql(f"select count(*) from metrics where run_uuid = '{rid}'") == "1001"
    assert server.psql(
        f"select value from params where run_uuid = '{rid}' and key = 'lr'") == "0.01"
    server.runs[rid] = 1000


WORKER = """
import os, sys, time
from mlflow import MlflowClient
uri, exp_id, idx, n, ready, go = sys.argv[1:7]
idx, n = int(idx), int(n)
client = MlflowClient(tracking_uri=uri)
rid = client.create_run(exp_id, run_name=f"worker-{idx}").info.run_id
open(ready, "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(go):  # start logging together with the other workers
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.01)
for step in range(n):
    client.log_metric(rid, "value", float(idx * 10_000 + step), step=step)
client.set_terminated(rid, "FINISHED")  # (prints a "View run" line of its own)
print("RUN_ID=" + rid)
"""


def test_concurrent_writers(server: Server, tmp_path: Path) -> None:
    """8 processes log 200 points each, all at once: every run and every point arrives."""
    client = server.client()
    exp_id = client.create_experiment(f"server-concurrent-{uuid.uuid4().hex[:8]}")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, server.uri, exp_id, str(i), str(N_WORKER_POINTS),
             str(tmp_path / f"ready{i}"), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(N_WORKERS)]
    try:
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready{i}").exists() for i in range(N_WORKERS)):
            assert all(p.poll() is None for p in procs), "a worker died before logging"
            assert time.monotonic() < deadline, "workers not ready after 300 s"
            time.sleep(0.05)
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err

    run_ids = {line.removeprefix("RUN_ID=") for out, _ in outs for line in out.splitlines()
               if line.startswith("RUN_ID=")}
    assert len(run_ids) == N_WORKERS
    runs = client.search_runs([exp_id], max_results=100)
    assert {r.info.run_id for r in runs} == run_ids
    for r in runs:
        assert r.info.status == "FINISHED"
        idx = int(r.info.run_name.removeprefix("worker-"))
        values = sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id,
                                                                             "value"))
        assert values == [(s, float(idx * 10_000 + s)) for s in range(N_WORKER_POINTS)]
        server.runs[r.info.run_id] = N_WORKER_POINTS
    ids = ", ".join(f"'{rid}'" for rid in run_ids)
    assert server.psql(f"select count(*) from metrics where run_uuid in ({ids})") == str(
        N_WORKERS * N_WORKER_POINTS)


def test_concurrent_log_batch_no_pool_starvation(server: Server) -> None:
    """24 threads of small log_batch calls at once: none fails, nothing is lost.

    MLflow's log_batch holds two pooled database connections at a time; with SQLAlchemy's
    default pool (5 + 10) 15 concurrent calls can starve each other until the 30 s pool
    timeout ("QueuePool limit ... reached"). start.sh sizes the pool for the server's 40
    request threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.entities import Metric

    client = server.client()
    exp_id = client.create_experiment(f"server-batch-threads-{uuid.uuid4().hex[:8]}")
    n_threads, n_calls, batch = 24, 10, 10
    run_ids = [client.create_run(exp_id).info.run_id for _ in range(n_threads)]
    now = int(time.time() * 1000)

    def log(run_id: str) -> None:
        for call in range(n_calls):
            client.log_batch(run_id, metrics=[Metric("b", float(s), now, s)
                                              for s in range(call * batch, (call + 1) * batch)])

    with ThreadPoolExecutor(n_threads) as pool:      # the load figures: benchmarks/server_load.py
        list(pool.map(log, run_ids))
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "b")) == n_calls * batch
        client.set_terminated(run_id, "FINISHED")
        server.runs[run_id] = n_calls * batch


def test_run_py_records_to_the_server(server: Server, tmp_path: Path) -> None:
    """``tracking=server`` sends a whole run (params, metrics, artifacts) to the server."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.uri,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "tracking=server", "bench=command",
         "bench.params.n=1000", "bench.trials=2", "tracking.experiment=server-e2e",
         f"hydra.run.dir={tmp_path}/out"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    client = server.client()
    exp = client.get_experiment_by_name("server-e2e")
    assert exp is not None
    run = client.search_runs([exp.experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["tracking.name"] == "server"
    assert run.data.metrics["sort_reversed_us.median"] > 0
    names = [a.path for a in client.list_artifacts(run.info.run_id, "results")]
    assert names == ["results/results.csv"]
    assert server.psql(f"select status from runs where run_uuid='{run.info.run_id}'") == "FINISHED"


def test_stop_start_persists(server: Server) -> None:
    """stop.sh -> status says down -> start.sh again -> every earlier run is still there."""
    client = server.client()
    exp_id = client.create_experiment(f"server-persist-{uuid.uuid4().hex[:8]}")
    rid = client.create_run(exp_id).info.run_id
    client.log_metric(rid, "before_stop", 1.0)
    client.set_terminated(rid, "FINISHED")
    server.runs[rid] = 1

    stop = script("stop.sh", server.env)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    status = script("status.sh", server.env)
    assert status.returncode == 1, status.stdout
    assert len(status.stdout.splitlines()) == 1 and "DOWN" in status.stdout

    assert start(server.env) == server.uri
    assert script("status.sh", server.env).returncode == 0

    client = server.client()
    for run_id, n_points in server.runs.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        (key,) = run.data.metrics.keys() - {"throughput"}
        assert len(client.get_metric_history(run_id, key)) == n_points, run_id
