"""Fault injection: nothing finished is lost, every attempt is recorded with its cause.

Scenarios: the tracking server unreachable from the start or cut mid-run (a TCP proxy in
front of the real PostgreSQL-backed server, tests/faultproxy.py), then ``bench sync``;
an offline sweep; a killed offline driver and an interrupted sync; a stage that hangs;
SIGKILL of the driver; a killed Parsl worker; concurrent drivers on one SQLite store and
on the server; hostile values; a planted secret; a huge non-UTF-8 output.  Each scenario
reports runs started / runs recorded / results lost (printed at the end of the session by
tests/conftest.py), and lost must be 0.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import pytest

from tests.support import ROOT, Proxy, Server, Store, child_env

BENCH = str(Path(sys.executable).with_name("bench"))
Report = Callable[[str, int, int, int], None]


def env(**extra: str) -> dict[str, str]:
    """run.py's environment, plus ``extra``."""
    out = child_env()
    out["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    out.update(extra)
    return out


def run_py(args: list[str], out: Path, environ: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` with its outputs under ``out``."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args,
                           f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/multi"],
                          capture_output=True, text=True, env=environ or env(), timeout=timeout,
                          cwd=ROOT)


def popen_run_py(args: list[str], out: Path, environ: dict[str, str] | None = None
                 ) -> subprocess.Popen:
    """``python run.py ARGS`` started in the background, its output in files under ``out``
    (not pipes: Parsl processes a killed driver leaves behind would hold them open)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stdout.txt", "w") as so, open(out / "stderr.txt", "w") as se:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args,
                                 f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/multi"],
                                stdout=so, stderr=se, text=True, env=environ or env(), cwd=ROOT)
    proc.out_dir = out      # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    """Wait for a background run.py; its stdout and stderr."""
    proc.wait(timeout=timeout)
    out: Path = proc.out_dir     # type: ignore[attr-defined]
    return (out / "stdout.txt").read_text(), (out / "stderr.txt").read_text()


def bench(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The ``bench`` console script."""
    return subprocess.run([BENCH, *args], capture_output=True, text=True,
                          env=environ or env(), timeout=300, cwd=ROOT)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """Poll ``predicate`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def runs_of(client: Any, experiment: str) -> list[Any]:
    """Every run of an experiment, oldest first."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return list(client.search_runs([exp.experiment_id], order_by=["start_time ASC"]))


def record_of(client: Any, run_id: str) -> dict[str, Any]:
    """What a run holds: status, params, tag names, metric steps, artifact paths."""
    run = client.get_run(run_id)
    steps = {k: sorted(m.step for m in client.get_metric_history(run_id, k))
             for k in run.data.metrics}
    files: list[str] = []
    todo: list[str | None] = [None]
    while todo:
        for info in client.list_artifacts(run_id, todo.pop()):
            (todo if info.is_dir else files).append(info.path)
    return {"status": run.info.status, "params": dict(run.data.params),
            "tags": set(run.data.tags) - {"spool.id"}, "steps": steps,
            "artifacts": sorted(files), "start": run.info.start_time, "end": run.info.end_time}


def lost_points(expected: dict[str, list[int]], found: dict[str, list[int]]) -> int:
    """Metric points of ``expected`` missing from ``found``."""
    return sum(max(0, len(v) - len(found.get(k, []))) for k, v in expected.items())


# --------------------------------------------------------------------------- the server


SLEEP = ["bench=sleep", "bench.params.seconds=1", "bench.trials=3", "tracking=server"]


@pytest.fixture(scope="module")
def online(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run logged online through a proxy; the reference a synced run must equal."""
    tmp = tmp_path_factory.mktemp("online")
    url = urlparse(server.uri)
    fwd = Proxy(url.hostname or "127.0.0.1", int(url.port or 80)).up()
    experiment = f"faults-spool-{uuid.uuid4().hex[:8]}"
    try:
        proc = run_py([*SLEEP, f"tracking.experiment={experiment}",
                       f"tracking.spool={tmp}/spool"], tmp, env(MLFLOW_TRACKING_URI=fwd.uri))
    finally:
        fwd.down()
    assert proc.returncode == 0, proc.stderr
    assert not (tmp / "spool").exists(), "an online run wrote to the spool"
    client = server.client()
    (run,) = runs_of(client, experiment)
    return {"experiment": experiment, "record": record_of(client, run.info.run_id),
            "spool": tmp / "spool", "tmp": tmp}


@pytest.mark.server
@pytest.mark.parametrize("cut", ["from the start", "mid-run"])
def test_server_down_then_bench_sync_equals_an_online_run(
        cut: str, server: Server, proxy: Proxy, online: dict[str, Any], tmp_path: Path,
        fault_report: Report) -> None:
    """The run goes on offline into the spool; ``bench sync`` uploads it exactly once, and
    it then holds what the online run holds (params, tags, metric steps, artifacts)."""
    client = server.client()
    experiment = online["experiment"]
    spool = online["spool"]      # the same tracking.spool, so the params match too
    before = {r.info.run_id for r in runs_of(client, experiment)}
    if cut == "from the start":
        proxy.down()
    driver = popen_run_py([*SLEEP, f"tracking.experiment={experiment}",
                           f"tracking.spool={spool}"], tmp_path,
                          env(MLFLOW_TRACKING_URI=proxy.uri, BENCH_TEST_TOKEN="tok-planted-9876"))
    if cut == "mid-run":     # once the run is open on the server (its last open-time artifact)
        def opened() -> bool:
            new = [r for r in runs_of(client, experiment) if r.info.run_id not in before]
            return bool(new) and "provenance" in {
                a.path for a in client.list_artifacts(new[0].info.run_id)}
        wait_for(opened, "the run to open on the server")
        proxy.down()
    out, err = finish(driver)
    assert driver.returncode == 0, err
    assert "cannot be reached" in err and "bench sync" in out
    journals = [d for d in spool.iterdir() if d.name != "synced"]
    assert len(journals) == 1
    text = (journals[0] / "journal.jsonl").read_text()
    assert "tok-planted-9876" not in text, "a secret reached the spool"
    head = json.loads(text.splitlines()[0])
    assert head["op"] == ("create" if cut == "from the start" else "attach")

    proxy.up()
    # The next online start points at the waiting journal, and does not end the server's
    # RUNNING copy of a spooled run as killed (its driver is gone, but its rest is spooled).
    other = run_py(["bench=sleep", "bench.params.seconds=0", "tracking=server",
                    f"tracking.experiment={experiment}", f"tracking.spool={spool}"],
                   tmp_path / "other", env(MLFLOW_TRACKING_URI=proxy.uri))
    assert other.returncode == 0, other.stderr
    assert "1 run(s) recorded while the tracking server could not be reached" in other.stderr
    before |= {r.info.run_id for r in runs_of(client, experiment)
               if r.info.run_id != head.get("run_id")}
    synced = bench("sync", "--spool", str(spool))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "1 uploaded" in synced.stdout
    again = bench("sync", "--spool", str(spool))
    assert again.returncode == 0 and "0 run(s) waiting" in again.stdout

    new = [r for r in runs_of(client, experiment) if r.info.run_id not in before]
    assert len(new) == 1, "a run was uploaded twice or not at all"
    if cut == "mid-run":
        assert new[0].info.run_id == head["run_id"]
    got, want = record_of(client, new[0].info.run_id), online["record"]
    assert got["status"] == "FINISHED" and got["end"] > got["start"]
    assert "failure.kind" not in new[0].data.tags
    assert got["params"].pop("tracking.uri") == proxy.uri     # each went through a proxy
    assert got["params"] == {k: v for k, v in want["params"].items() if k != "tracking.uri"}
    assert got["tags"] == want["tags"]
    assert got["steps"] == want["steps"]
    assert got["artifacts"] == want["artifacts"]
    fault_report(f"server down {cut}, then bench sync", 1, len(new),
                 lost_points(want["steps"], got["steps"]))


@pytest.mark.server
def test_an_offline_sweep_syncs_with_its_parent(server: Server, proxy: Proxy, tmp_path: Path,
                                                fault_report: Report) -> None:
    """Parent and children are journaled; after sync each child points at its parent."""
    experiment = f"faults-sweep-{uuid.uuid4().hex[:8]}"
    proxy.down()
    proc = run_py(["-m", "bench=sleep", "bench.params.seconds=0,0.2", "tracking=server",
                   f"tracking.experiment={experiment}", f"tracking.spool={tmp_path}/spool"],
                  tmp_path, env(MLFLOW_TRACKING_URI=proxy.uri))
    assert proc.returncode == 0, proc.stderr
    proxy.up()
    synced = bench("sync", "--spool", f"{tmp_path}/spool")
    assert synced.returncode == 0 and "3 uploaded" in synced.stdout, synced.stdout
    runs = runs_of(server.client(), experiment)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert parents[0].data.metrics["jobs_finished"] == 2
    lost = sum(1 for c in children if "slept_s" not in c.data.metrics)
    fault_report("offline sweep, then bench sync", 3, len(runs), lost)


@pytest.mark.server
def test_concurrent_drivers_to_the_server(server: Server, tmp_path: Path,
                                          fault_report: Report) -> None:
    """Four run.py drivers at once on the PostgreSQL-backed server: every run complete."""
    experiment = f"faults-server-many-{uuid.uuid4().hex[:8]}"
    n = 4
    drivers = [popen_run_py(["bench=sleep", "bench.params.seconds=0", "bench.trials=3",
                             "tracking=server", f"tracking.experiment={experiment}",
                             f"tracking.spool={tmp_path}/spool"], tmp_path / str(i),
                            env(MLFLOW_TRACKING_URI=server.uri)) for i in range(n)]
    for d in drivers:
        _, err = finish(d)
        assert d.returncode == 0, err
    client = server.client()
    runs = runs_of(client, experiment)
    assert not (tmp_path / "spool").exists()
    assert [r.info.status for r in runs] == ["FINISHED"] * n
    lost = sum(3 - len(client.get_metric_history(r.info.run_id, "slept_s")) for r in runs)
    fault_report("4 concurrent drivers -> PostgreSQL server", n, len(runs), lost)


# ----------------------------------------------------------------------- the spool alone

JOURNAL_WRITER = """
import sys
from runners.tracking.spool import Spool
spool = Spool(sys.argv[1], 'http://127.0.0.1:9')
run = spool.start_run('faults-spool-unit', 'r', {'p': '1'}, {'t': 'x'})
for step in range(3):
    spool.log_points(run, [('m', float(step), step), ('n', 2.0 * step, step)])
if sys.argv[2] == 'end':
    spool.end_run(run, 'FINISHED')
print(run)
"""


def write_journal(root: Path, end: bool = True) -> str:
    """A journal written by a process that then exits (without an end: as if killed)."""
    proc = subprocess.run([sys.executable, "-c", JOURNAL_WRITER, str(root),
                           "end" if end else "open"], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    return proc.stdout.strip()


def test_a_killed_offline_driver_is_closed_killed_by_sync(store: Store, tmp_path: Path,
                                                          fault_report: Report) -> None:
    local = write_journal(tmp_path / "spool", end=False)
    proc = bench("sync", "--spool", str(tmp_path / "spool"), "--uri", store.uri)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"closed {local} KILLED" in proc.stdout
    (run,) = store.runs("faults-spool-unit")
    assert run.info.status == "KILLED"
    assert run.data.tags["failure.kind"] == "driver_killed"
    points = len(store.client().get_metric_history(run.info.run_id, "m"))
    fault_report("driver killed while offline, then bench sync", 1,
                 len(store.runs("faults-spool-unit")), 3 - points)


def test_a_journal_torn_by_a_killed_writer_is_repaired_and_synced(store: Store,
                                                                   tmp_path: Path) -> None:
    local = write_journal(tmp_path / "spool", end=False)
    with open(tmp_path / "spool" / local / "journal.jsonl", "a") as fh:
        fh.write('{"op": "metrics", "points": [["m", 9.0, 17')       # killed mid-write
    proc = bench("sync", "--spool", str(tmp_path / "spool"), "--uri", store.uri)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = store.runs("faults-spool-unit")
    assert run.info.status == "KILLED"
    steps = [m.step for m in store.client().get_metric_history(run.info.run_id, "m")]
    assert sorted(steps) == [0, 1, 2]


def test_a_journal_from_another_host_waits_unless_foreign(store: Store, tmp_path: Path) -> None:
    local = write_journal(tmp_path / "spool", end=False)
    path = tmp_path / "spool" / local / "journal.jsonl"
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    head["driver"]["driver.host"] = "some-compute-node"
    path.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    first = bench("sync", "--spool", str(tmp_path / "spool"), "--uri", store.uri)
    assert first.returncode == 0 and "another host" in first.stdout
    assert store.runs("faults-spool-unit") == []
    forced = bench("sync", "--spool", str(tmp_path / "spool"), "--uri", store.uri, "--foreign")
    assert forced.returncode == 0 and "1 uploaded" in forced.stdout
    (run,) = store.runs("faults-spool-unit")
    assert run.info.status == "KILLED"


def test_an_interrupted_sync_resumes_without_duplicates(store: Store, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync that dies after applying an operation (before saving its progress), or right
    after creating the run, is resumed by the next one: one run, no point twice."""
    from runners.tracking import sync as spool_mod
    from runners.tracking.replay import Replayer

    root = tmp_path / "spool"
    write_journal(root)
    write_journal(root)
    real_apply, real_create = Replayer.apply_spooled, Replayer.create_spooled
    crashed: list[str] = []

    def create_then_crash(self: Replayer, *args: Any, **kwargs: Any) -> str:
        run_id = real_create(self, *args, **kwargs)
        if "create" not in crashed:
            crashed.append("create")
            raise ConnectionError("the sync died right after creating the run")
        return run_id

    def apply_then_crash(self: Replayer, run_id: str, op: Any, *args: Any, **kw: Any) -> None:
        real_apply(self, run_id, op, *args, **kw)
        if op["op"] == "metrics" and "metrics" not in crashed:
            crashed.append("metrics")
            raise ConnectionError("the sync died before saving its progress")

    monkeypatch.setattr(Replayer, "create_spooled", create_then_crash)
    monkeypatch.setattr(Replayer, "apply_spooled", apply_then_crash)
    reports = [spool_mod.sync(root, Replayer, store.uri) for _ in range(3)]
    assert [len(r.failed) for r in reports] == [2, 0, 0]
    assert [len(r.uploaded) for r in reports] == [0, 2, 0]
    runs = store.runs("faults-spool-unit")
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("m", "n"):
            steps = [m.step for m in store.client().get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == [0, 1, 2], (key, steps)


def test_a_sync_that_died_between_creating_the_run_and_its_params(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runners.tracking import sync as spool_mod
    from runners.tracking.replay import Replayer

    root = tmp_path / "spool"
    write_journal(root)

    def create_without_params(self: Replayer, experiment: str, run_name: str, start_ms: int,
                              params: Any, tags: Any) -> str:
        self.client.create_run(self.writer.experiment_id(experiment), start_time=start_ms,
                               tags=dict(tags), run_name=run_name)
        raise ConnectionError("the sync died before the params were logged")

    with monkeypatch.context() as patch:
        patch.setattr(Replayer, "create_spooled", create_without_params)
        assert len(spool_mod.sync(root, Replayer, store.uri).failed) == 1
    assert len(spool_mod.sync(root, Replayer, store.uri).uploaded) == 1
    (run,) = store.runs("faults-spool-unit")
    assert run.data.params == {"p": "1"} and run.info.status == "FINISHED"


def test_a_server_lost_between_batches_spools_only_the_rest(store: Store, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """1,500 points: the first batch reached the server, the second is spooled with the same
    timestamps; after sync the run has each point once."""
    import requests

    from runners.tracking import sync as spool_mod
    from runners.tracking.replay import Replayer
    from runners.tracking.spool import Spool
    from runners.tracking.tracker import Tracker

    tracker = Tracker(store.uri, str(store.artifacts))
    run_id = tracker.start_run("faults-batches", "r", {}, {})
    tracker.spool = Spool(tmp_path / "spool", store.uri)
    real = tracker.online.client.log_batch
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise requests.exceptions.ConnectionError("connection refused")
        real(*args, **kwargs)

    monkeypatch.setattr(tracker.online.client, "log_batch", flaky)
    tracker.log_points(run_id, [("m", float(i), i) for i in range(1500)])
    tracker.end_run(run_id)
    assert tracker.offline_reason is not None
    monkeypatch.undo()
    report = spool_mod.sync(tmp_path / "spool", Replayer, store.uri)
    assert len(report.uploaded) == 1
    history = store.client().get_metric_history(run_id, "m")
    assert sorted(m.step for m in history) == list(range(1500))
    assert len({m.timestamp for m in history}) == 1
    assert store.client().get_run(run_id).info.status == "FINISHED"


def test_concurrent_syncs_upload_each_journal_once(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "spool"
    for _ in range(6):
        write_journal(root)
    store.client().search_experiments()      # the store exists before the two syncs race
    syncs = [subprocess.Popen([BENCH, "sync", "--spool", str(root), "--uri", store.uri],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env(), cwd=ROOT) for _ in range(2)]
    outs = [s.communicate(timeout=300) for s in syncs]
    assert all(s.returncode == 0 for s in syncs), outs
    assert len(store.runs("faults-spool-unit")) == 6
    assert not [d for d in root.iterdir() if d.name != "synced"]


# ------------------------------------------------------------ stages, drivers and workers


def test_a_stage_that_hangs_is_killed_and_the_run_fails_timeout(
        store: Store, tmp_path: Path, fault_report: Report) -> None:
    counter = tmp_path / "calls"
    proc = run_py(["bench=sleep", *store.overrides(), "bench.trials=3", "bench.timeout_s=4",
                   f"bench.command='{{python}} {ROOT}/tests/data/hang_second.py {counter}'"],
                  tmp_path)
    assert proc.returncode == 1, proc.stderr
    (run,) = store.runs("sleep")
    assert run.info.status == "FAILED"
    assert run.data.tags["failure.kind"] == "timeout"
    assert run.data.tags["failure.stage"] == "bench"
    history = store.client().get_metric_history(run.info.run_id, "answer_s")
    assert [m.step for m in history] == [0], "the completed trial was not kept"
    hung = [p for p in psutil.process_iter(["cmdline"])
            if str(counter) in " ".join(p.info["cmdline"] or [])]
    assert not hung, "the hung benchmark is still running"
    fault_report("a stage hangs (timeout)", 1, len(store.runs("sleep")), 1 - len(history))


def _sleepers(driver_pid: int) -> list[psutil.Process]:
    """The sleep.py benchmark processes started for one driver (found by its marker)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if "benches/sleep.py" in " ".join(proc.cmdline()) and \
                    f":{driver_pid}:" in proc.environ().get("BENCH_DRIVER", ""):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_sigkill_of_a_single_run_driver_is_marked_killed_at_the_next_start(
        store: Store, tmp_path: Path, fault_report: Report) -> None:
    store.client().search_experiments()
    driver = popen_run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=60"],
                          tmp_path / "a")
    wait_for(lambda: _sleepers(driver.pid), "the benchmark to start")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=60)
    again = run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=0"], tmp_path / "b")
    assert again.returncode == 0, again.stderr
    runs = store.runs("sleep")
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED", "KILLED"]
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert killed.data.tags["failure.kind"] == "driver_killed"
    wait_for(lambda: not _sleepers(driver.pid), "the orphaned benchmark to be stopped", 30)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    fault_report("SIGKILL of a single-run driver", 2, len(runs),
                 sum("slept_s" not in r.data.metrics for r in finished))


def test_a_killed_worker_is_retried_and_the_attempts_recorded(
        store: Store, tmp_path: Path, fault_report: Report) -> None:
    store.client().search_experiments()
    driver = popen_run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=6"],
                          tmp_path)
    (sleeper,) = wait_for(lambda: _sleepers(driver.pid), "the benchmark to start")
    worker = sleeper.parent()
    assert worker is not None
    worker.kill()                       # the Parsl worker running the trial
    (retry,) = wait_for(lambda: [p for p in _sleepers(driver.pid) if p.pid != sleeper.pid],
                        "the retried trial to start")
    # the retried attempt stopped what the lost one left running (the two would compete)
    wait_for(lambda: not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE,
             "the lost attempt's benchmark to be stopped", 5)
    out, err = finish(driver)
    assert driver.returncode == 0, err
    (run,) = store.runs("sleep")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["parsl.retries"] == 1
    (why,) = [v for k, v in run.data.tags.items() if k.startswith("parsl.attempts.")]
    assert why.startswith("2 attempts") and "WorkerLost" in why
    assert "slept_s" in run.data.metrics
    fault_report("a Parsl worker killed mid-task (retried)", 1, len(store.runs("sleep")),
                 int("slept_s" not in run.data.metrics))


def test_a_failing_benchmark_is_not_retried(store: Store, tmp_path: Path) -> None:
    proc = run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=0",
                   "bench.params.exit=3"], tmp_path)
    assert proc.returncode == 1
    (run,) = store.runs("sleep")
    assert run.info.status == "FAILED" and run.data.tags["failure.kind"] == "error"
    assert run.data.metrics["parsl.retries"] == 0
    assert not [k for k in run.data.tags if k.startswith("parsl.attempts.")]


def test_concurrent_drivers_and_sweeps_on_one_new_sqlite_store(
        store: Store, tmp_path: Path, fault_report: Report) -> None:
    """Four single runs and two sweeps start at once on a store that does not exist yet."""
    singles = [popen_run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=0",
                             "bench.trials=3"], tmp_path / f"s{i}") for i in range(4)]
    sweeps = [popen_run_py(["-m", "bench=sleep", *store.overrides(), "bench.trials=3",
                            f"bench.params.seconds=0,0.0{i + 1}", "rerun=true"],
                           tmp_path / f"m{i}") for i in range(2)]
    for p in singles + sweeps:
        _, err = finish(p, 600)
        assert p.returncode == 0, err
    runs = store.runs("sleep")
    children = [r for r in runs if "sweep.id" not in r.data.tags or
                "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 4 + 2 * 3 and len(children) == 8
    assert all(r.info.status == "FINISHED" for r in runs)
    client = store.client()
    lost = sum(3 - len(client.get_metric_history(r.info.run_id, "slept_s")) for r in children)
    with sqlite3.connect(store.db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    fault_report("4 drivers + 2 sweeps -> one new SQLite store", 10, len(runs), lost)


# ------------------------------------------------------------------ hostile and bad input

PWNED = Path("/tmp/pwned")


@pytest.mark.parametrize("args", [
    ["bench.packages=[numpy,'x; touch /tmp/pwned']"],
    ["-m", "bench.packages=[numpy],[numpy,'x; touch /tmp/pwned']"],
], ids=["single", "sweep"])
def test_a_hostile_package_name_executes_nothing(args: list[str], store: Store,
                                                 tmp_path: Path, fault_report: Report) -> None:
    PWNED.unlink(missing_ok=True)
    proc = run_py([*args, *store.overrides()], tmp_path)
    assert proc.returncode == 2
    assert "is not an importable module name" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not PWNED.exists()
    assert store.runs() == []
    started = int(proc.returncode != 2)      # refused before a run was opened: none
    fault_report(f"hostile package name ({'sweep' if '-m' in args else 'single run'}): "
                 "refused, nothing ran", started, len(store.runs()), started - len(store.runs()))


@pytest.mark.parametrize("value", ["0; touch /tmp/pwned", "$(touch /tmp/pwned)",
                                   "`touch /tmp/pwned`"])
def test_hostile_command_parameters_reach_the_program_as_one_argument(
        value: str, store: Store, tmp_path: Path, fault_report: Report) -> None:
    PWNED.unlink(missing_ok=True)
    proc = run_py(["bench=sleep", *store.overrides(), f"bench.params.seconds='{value}'"],
                  tmp_path)
    assert proc.returncode == 1             # sleep.py refuses the value: a failed run
    assert not PWNED.exists()
    (run,) = store.runs("sleep")
    assert run.info.status == "FAILED"
    assert "invalid float value" in run.data.tags["failure.message"]
    assert value in run.data.tags["failure.message"]
    fault_report(f"hostile command value {value!r}: one argument", 1, len(store.runs("sleep")),
                 int("failure.message" not in run.data.tags))


def test_planted_secrets_are_never_logged_or_published(store: Store, tmp_path: Path,
                                                       fault_report: Report) -> None:
    secrets = {"env": "hunter2-planted-env", "config": "planted-in-config-77", "short": "47x1"}
    proc = run_py(["bench=sleep", *store.overrides(), "bench.params.seconds=0",
                   f"+machine.env.SITE_PASSPHRASE={secrets['config']}",
                   f"+machine.env.SITE_PIN={secrets['short']}", "redact=[_PIN$]"],
                  tmp_path, env(MY_SERVICE_API_TOKEN=secrets["env"],
                                DATABASE_URL="postgresql://u:url-pw-5@h/db"))
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("sleep")
    values = [*run.data.params.values(), *run.data.tags.values()]
    assert run.data.params["machine.env.SITE_PASSPHRASE"] == "[redacted]"
    client = store.client()
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    blobs = [p.read_bytes() for p in local.rglob("*") if p.is_file()]
    environment = json.loads((local / "provenance" / "environment.json").read_text())
    assert environment["MY_SERVICE_API_TOKEN"] == "[redacted]"
    assert environment["DATABASE_URL"] == "postgresql://u:[redacted]@h/db"
    assert run.data.params["machine.env.SITE_PIN"] == "[redacted]"
    assert "PATH" in environment
    repo = tmp_path / "results.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    pub = bench("publish", "--tracking-uri", store.uri, "--repo", str(repo))
    assert pub.returncode == 0, pub.stdout + pub.stderr
    dump = subprocess.run(["git", "-C", str(repo), "log", "-p", "--all"], capture_output=True,
                          check=True).stdout
    assert b"SITE_PASSPHRASE" in dump       # the key is published, its value is not
    for secret in [*secrets.values(), "url-pw-5"]:
        assert not any(secret in v for v in values), secret
        assert not any(secret.encode() in b for b in blobs), secret
        assert secret.encode() not in dump, secret
    fault_report("planted secrets (env and config): redacted", 1, len(store.runs("sleep")),
                 int("slept_s" not in run.data.metrics))


def test_a_huge_log_in_one_trial_only(store: Store, tmp_path: Path) -> None:
    """Trials whose logs were and were not cut summarize together."""
    proc = run_py(["bench=sleep", *store.overrides(), "bench.trials=2",
                   f"bench.command='{{python}} {ROOT}/tests/data/big_first.py {tmp_path}/n'"],
                  tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("sleep")
    cut = store.client().get_metric_history(run.info.run_id, "bench.log_truncated_bytes")
    assert sorted((m.step, m.value > 0) for m in cut) == [(0, True), (1, False)]


def test_a_huge_non_utf8_output_is_parsed_whole_and_its_log_capped(
        store: Store, tmp_path: Path, fault_report: Report) -> None:
    proc = run_py(["bench=sleep", *store.overrides(),
                   f"bench.command='{{python}} {ROOT}/tests/data/noisy.py 40'"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("sleep")
    assert run.data.metrics["middle"] == 1.5 and run.data.metrics["last"] == 2.5
    assert run.data.metrics["bench.log_truncated_bytes"] > 30 * 2**20
    local = Path(store.client().download_artifacts(run.info.run_id, "logs/bench",
                                                   str(tmp_path / "dl")))
    log = (local / "trial-0.stdout.log").read_bytes()
    assert len(log) < 9 * 2**20
    assert b"\xff\xfe" in log and b"truncated by bench" in log
    assert log.rstrip().endswith(b'{"name": "last", "value": 2.5}')
    fault_report("40 MiB of non-UTF-8 output", 1, len(store.runs("sleep")), 2 - sum(
        k in run.data.metrics for k in ("middle", "last")))
