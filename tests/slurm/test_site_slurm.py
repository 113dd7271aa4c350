"""Two sites, one store: agents for machine=local and for the local Slurm cluster, both on
the PostgreSQL-backed server, each take only their own runs; the Slurm agent runs them all
in one batch job; ``bench site ls`` shows both and ``bench analytics`` reports each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Server, SiteAgent, child_env, slurm_env

BENCH = str(Path(sys.executable).with_name("bench"))


@pytest.fixture
def agents(server: Server, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, SiteAgent]]:
    """Agents of site=local and site=slurm on the server, stopped at the end."""
    monkeypatch.setenv("BENCH_SITE_DIR", str(tmp_path / "sites"))
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    store = ["tracking=server", f"tracking.uri={server.uri}"]
    made = {name: SiteAgent(name, tmp_path / "sites", store) for name in ("local", "slurm")}
    try:
        for agent in made.values():
            agent.start()
        yield made
    finally:
        for agent in made.values():
            agent.stop()


def submit(tmp_path: Path, n: int, *args: str, **env: str) -> str:
    """``python run.py ARGS site.wait=true``; the queued run's id (the run must finish and
    its results table be printed, through the socket or the store)."""
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "site.wait=true",
                           f"hydra.run.dir={tmp_path}/out{n}"], capture_output=True,
                          text=True, env={**child_env(), **env}, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "slept_s" in proc.stdout, proc.stdout
    return next(ln.split()[1] for ln in proc.stderr.splitlines() if " queued for site=" in ln)


@pytest.mark.server
def test_two_sites_one_store(server: Server, agents: dict[str, SiteAgent],
                             tmp_path: Path) -> None:
    experiment = f"two-sites-{uuid.uuid4().hex[:8]}"
    common = ["bench=sleep", "bench.params.seconds=0", "tracking=server",
              f"tracking.uri={server.uri}", f"tracking.experiment={experiment}"]
    on_slurm = [submit(tmp_path, i, *common, "site=slurm", "fs=scratch") for i in range(3)]
    on_local = [submit(tmp_path, 10 + i, *common, "site=local") for i in range(2)]
    # queued through the store (as from another host): the Slurm agent polls and takes it
    on_slurm.append(submit(tmp_path, 20, *common, "site=slurm", "fs=scratch",
                           BENCH_SITE_DIR=str(tmp_path / "elsewhere")))
    client = server.client()
    sites = client.get_experiment_by_name("bench-sites")
    assert sites is not None
    ids = {name: client.get_run(next(r.info.run_id for r in client.search_runs(
        [sites.experiment_id],
        filter_string=f"tags.`driver.pid` = '{agent.pid}'"))).data.tags["site.agent"]
        for name, agent in agents.items()}
    jobs = set()
    for run_id in on_slurm:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["site"] == "slurm" and run.data.tags["machine"] == "docker-slurm"
        assert run.data.tags["site.agent"] == ids["slurm"]
        jobs.add(run.data.tags["scheduler.job_id"])
    assert len(jobs) == 1, f"the Slurm site's runs used batch jobs {jobs}, not one"
    for run_id in on_local:
        tags = client.get_run(run_id).data.tags
        assert tags["site.agent"] == ids["local"] and tags["machine"] == "local"
        assert "scheduler.job_id" not in tags
    listed = subprocess.run([BENCH, "site", "ls", "--tracking-uri", server.uri],
                            capture_output=True, text=True, env=child_env(), timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {tuple(ln.split()[:5]) for ln in listed.stdout.splitlines()[1:]}
    for name, machine in (("local", "local"), ("slurm", "docker-slurm")):
        assert any(r[0] == name and r[1] == machine and r[3] == str(agents[name].pid)
                   and r[4] == "live" for r in rows), listed.stdout
    report = subprocess.run([BENCH, "analytics", "--site", "local", "--site", "slurm",
                             "--tracking-uri", server.uri, "--output", str(tmp_path / "an")],
                            capture_output=True, text=True, env=child_env(), timeout=300)
    assert report.returncode == 0, report.stderr
    assert "site local:" in report.stdout and "site slurm:" in report.stdout
    assert (tmp_path / "an" / "throughput.png").is_file()


def squeue() -> set[str]:
    """The job ids in Slurm's queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         timeout=30, env=slurm_env())
    return set(out.stdout.split())


def block_of(agent: SiteAgent, timeout: float = 60) -> str:
    """The batch job the agent's block runs in (``bench site status``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = next(ln for ln in agent.bench("status").stdout.splitlines() if "blocks:" in ln)
        job = line.split(":", 1)[1].strip()
        if job.isdigit():
            return job
        time.sleep(0.5)
    raise AssertionError(f"the agent of site={agent.name} has no block: {agent.log()}")


def test_a_killed_agents_batch_job_is_cancelled_when_the_site_restarts(
        site_agent: Callable[..., SiteAgent]) -> None:
    """SIGKILL the Slurm site's agent: its batch job stays queued until the next agent of
    the site starts, which cancels it and submits its own."""
    agent = site_agent("slurm")
    old = block_of(agent)
    assert old in squeue()
    os.kill(agent.pid, signal.SIGKILL)
    time.sleep(1)
    assert old in squeue()          # nothing else ends it at once
    agent.start()
    new = block_of(agent)
    assert new != old
    t0 = time.monotonic()
    while old in squeue() and time.monotonic() - t0 < 30:
        time.sleep(0.5)
    assert old not in squeue(), agent.log()
    assert f"cancelled blocks ['{old}']" in agent.log()
