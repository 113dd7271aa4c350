"""Site agents on the PostgreSQL-backed MLflow server: racing claims on the server (one
wins), and a server that cannot be reached pauses claiming while a running run goes on
into the spool, which the agent uploads once the server answers again."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import ROOT, Proxy, Server, SiteAgent, child_env, claim_race, queued_run


def run_py(args: list[str], out: Path, **env: str) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` with its outputs under ``out``."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args,
                           f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/multi"],
                          capture_output=True, text=True, env={**child_env(), **env},
                          timeout=300, cwd=ROOT)


def status_of(server: Server, run_id: str) -> str:
    """A run's status on the server."""
    return str(server.client().get_run(run_id).info.status)


def wait_status(server: Server, run_id: str, want: tuple[str, ...], timeout: float = 120) -> str:
    """Poll the server until the run's status is one of ``want``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status = status_of(server, run_id)
        if status in want:
            return status
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} is {status_of(server, run_id)}, not {want}")


@pytest.mark.server
def test_one_of_many_racing_agents_claims_a_run_on_the_server(server: Server) -> None:
    """The params table's primary key in PostgreSQL lets one claim win."""
    run_id = queued_run(server.uri, f"race-{uuid.uuid4().hex[:8]}")
    results = claim_race(server.uri, run_id)
    winners = [a for a, won in results.items() if won is True]
    assert len(winners) == 1, results
    assert sum(won is False for won in results.values()) == len(results) - 1, results
    assert server.client().get_run(run_id).data.params["site.claim.1"] == winners[0]


@pytest.mark.server
def test_unreachable_server_pauses_claiming_and_the_spool_keeps_the_running_run(
        server: Server, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fault_report: Callable[[str, int, int, int], None]) -> None:
    monkeypatch.setenv("BENCH_SITE_DIR", str(tmp_path / "sites"))
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    site = "local"
    experiment = f"site-cut-{uuid.uuid4().hex[:8]}"
    store = ["tracking=server", f"tracking.experiment={experiment}"]
    agent = SiteAgent(site, tmp_path / "sites", [*store, f"tracking.uri={proxy.uri}",
                                                  f"tracking.spool={tmp_path}/spool"])
    try:
        agent.start()
        first = run_py(["bench=sleep", "bench.params.seconds=3", "bench.trials=2",
                        f"site={site}", *store, f"tracking.uri={proxy.uri}"], tmp_path / "a")
        assert first.returncode == 0, first.stderr
        a = next(ln.split()[1] for ln in first.stderr.splitlines() if "queued" in ln)
        wait_status(server, a, ("RUNNING",))
        proxy.down()
        # queued straight on the server (as from another host) while the agent cannot see it
        second = run_py(["bench=sleep", "bench.params.seconds=0", f"site={site}", *store,
                         f"tracking.uri={server.uri}"], tmp_path / "b",
                        BENCH_SITE_DIR=str(tmp_path / "elsewhere"))
        assert second.returncode == 0, second.stderr
        b = next(ln.split()[1] for ln in second.stderr.splitlines() if "queued" in ln)
        spool = tmp_path / "spool"
        t0 = time.monotonic()      # run a ends into the spool (after the client's retries)
        while not (spool.is_dir() and any(spool.iterdir())) and time.monotonic() - t0 < 90:
            time.sleep(0.5)
        assert spool.is_dir() and any(spool.iterdir()), "the running run wrote no journal"
        time.sleep(3)       # a few of the agent's polls: nothing may claim run b
        assert status_of(server, b) == "SCHEDULED", agent.log()
        assert "site.claim.1" not in server.client().get_run(b).data.params
        assert status_of(server, a) == "RUNNING"      # its end is in the spool
        proxy.up()
        assert wait_status(server, a, ("FINISHED", "FAILED", "KILLED")) == "FINISHED", \
            agent.log()
        assert wait_status(server, b, ("FINISHED", "FAILED", "KILLED")) == "FINISHED", \
            agent.log()
        client = server.client()
        points = client.get_metric_history(a, "slept_s")
        assert sorted(p.step for p in points) == [0, 1]
        exp = client.get_experiment_by_name(experiment)
        assert exp is not None
        runs = client.search_runs([exp.experiment_id])
        assert len(runs) == 2
        fault_report("site agent: tracking server cut while a run ran, another queued", 2,
                     sum(r.info.status == "FINISHED" for r in runs),
                     2 - len(points))
    finally:
        agent.stop()
