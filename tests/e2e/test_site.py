"""Site agents end to end: ``bench site start``, ``python run.py … site=local`` through the
agent's socket and through the store, the no-agent cases, a sweep queued under its parent,
and an agent killed with SIGKILL (reaped, requeued, its Parsl processes stopped)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.support import RunPy, SiteAgent, Store

NOOP = ("bench=sleep", "bench.params.seconds=0")


def wait_for(store: Store, run_id: str, statuses: tuple[str, ...], timeout: float = 120) -> str:
    """Poll the store until the run's status is one of ``statuses``; return it."""
    client = store.client()
    t0 = time.monotonic()
    status = ""
    while time.monotonic() - t0 < timeout:
        status = client.get_run(run_id).info.status
        if status in statuses:
            return status
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} is {status}, not {statuses}, after {timeout} s")


def queued_id(stderr: str) -> str:
    """The run id from ``run … queued for site=…``."""
    line = next(ln for ln in stderr.splitlines() if " queued for site=" in ln)
    return line.split()[1]


def test_queued_run_is_recorded_as_a_direct_run(run_py: RunPy, store: Store,
                                                site_agent: Callable[..., SiteAgent]) -> None:
    """With an agent, ``site.wait=true`` prints the summary; the run has the direct run's
    config hash, tags and artifacts, plus where it was queued and claimed."""
    agent = site_agent()
    proc = run_py(*NOOP, "site=local", "site.wait=true", *store.overrides(), timeout=120)
    assert proc.returncode == 0, proc.stderr + agent.log()
    run_id = queued_id(proc.stderr)
    assert f"[run {run_id} FINISHED]" in proc.stdout
    assert "slept_s" in proc.stdout
    direct = run_py(*NOOP, *store.overrides(), check=True)
    assert direct.returncode == 0
    client = store.client()
    runs = {r.info.run_id: r for r in store.runs("sleep")}
    assert len(runs) == 2
    queued, other = runs[run_id], next(r for i, r in runs.items() if i != run_id)
    assert queued.info.status == "FINISHED"
    tags = queued.data.tags
    assert tags["config.hash"] == other.data.tags["config.hash"]
    assert tags["site"] == "local" and tags["site.agent"].endswith(tags["driver.started"])
    assert float(tags["site.claimed_at"]) >= float(tags["site.queued_at"])
    assert tags["driver.pid"] == str(agent.pid)
    assert set(other.data.tags) - set(tags) == set()       # every tag a direct run has
    assert set(other.data.metrics) == set(queued.data.metrics)
    assert set(store.artifact_paths(run_id)) == set(store.artifact_paths(other.info.run_id))
    assert client.get_run(run_id).data.params["site.claim.1"] == tags["site.agent"]

    # without site.wait it returns at once; the agent runs it
    proc = run_py(*NOOP, "bench.trials=2", "site=local", *store.overrides(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert wait_for(store, queued_id(proc.stderr), ("FINISHED", "FAILED")) == "FINISHED"
    for _ in range(20):     # the agent rewrites its status file as it loops
        status = agent.bench("status")
        if "finished 2" in status.stdout:
            break
        time.sleep(0.5)
    assert status.returncode == 0 and f"agent pid {agent.pid}" in status.stdout
    assert "queue: 0 run(s)" in status.stdout and "finished 2" in status.stdout
    listed = agent.ls()
    assert listed.returncode == 0
    row = next(ln.split() for ln in listed.stdout.splitlines() if ln.startswith("local "))
    assert row[:5] == ["local", "local", os.uname().nodename, str(agent.pid), "live"]


def test_failed_run_keeps_its_cause_and_the_agent_goes_on(
        run_py: RunPy, store: Store, site_agent: Callable[..., SiteAgent]) -> None:
    """A run that fails under the agent ends FAILED with failure.* tags and exit code 1 for
    the waiting submitter; the next run is served."""
    agent = site_agent()
    bad = run_py("bench=sleep", "bench.params.seconds=0", "bench.params.exit=3", "site=local",
                 "site.wait=true", *store.overrides(), timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    run = store.client().get_run(queued_id(bad.stderr))
    assert run.info.status == "FAILED"
    assert run.data.tags["failure.stage"] == "bench"
    assert "FAILED" in bad.stdout
    good = run_py(*NOOP, "site=local", "site.wait=true", *store.overrides(), timeout=120)
    assert good.returncode == 0, good.stderr + agent.log()


def test_no_agent_queues_and_the_agent_started_later_runs_the_queue(
        run_py: RunPy, store: Store, site_agent: Callable[..., SiteAgent],
        tmp_path: Path) -> None:
    """No agent: the run is queued with one line saying how to start one (exit 0);
    ``site.wait=true`` gives up after the stated wait (exit 2), the run still queued.  An
    agent started afterwards takes both."""
    agent = site_agent(start=False)
    proc = run_py(*NOOP, "site=local", *store.overrides(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "bench site start local" in notes[0]
    first = queued_id(proc.stderr)
    proc = run_py(*NOOP, "bench.trials=2", "site=local", "site.wait=true",
                  "site.wait_agent_s=1", *store.overrides(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "within 1 s" in errors[0] and "stays queued" in errors[0]
    second = queued_id(proc.stderr)
    client = store.client()
    assert {client.get_run(i).info.status for i in (first, second)} == {"SCHEDULED"}
    status = agent.bench("status")
    assert status.returncode == 3 and "2 run(s) queued" in status.stdout
    shutil.rmtree(tmp_path / "outputs")     # as if queued from another host: the agent
    agent.start()                           # reads their configs from the store
    for run_id in (first, second):
        assert wait_for(store, run_id, ("FINISHED", "FAILED")) == "FINISHED", agent.log()


def test_one_agent_per_site_and_host(site_agent: Callable[..., SiteAgent]) -> None:
    """A second agent for the same site on this host refuses with one line, exit 2; an
    unknown site and an unreachable scheduler too."""
    agent = site_agent()
    again = agent.bench("start")
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0
    assert f"already runs on this host (pid {agent.pid})" in again.stderr
    assert psutil.pid_exists(agent.pid)
    unknown = SiteAgent("nosuch", agent.sites, agent.overrides).bench("start")
    assert unknown.returncode == 2 and "no site 'nosuch'" in unknown.stderr
    assert "local" in unknown.stderr
    slurm = SiteAgent("slurm", agent.sites, [*agent.overrides,
                                             "machine.env.SLURM_CONF=/nonexistent.conf"])
    down = slurm.bench("start")
    assert down.returncode == 2, down.stdout + down.stderr
    assert down.stderr.startswith("error: machine=docker-slurm")
    assert not (agent.sites / "slurm" / "agent.pid").exists()


def test_sweep_queues_its_jobs_under_a_parent(run_py: RunPy, store: Store,
                                             site_agent: Callable[..., SiteAgent]) -> None:
    """``-m … site=local`` queues each job under a SCHEDULED parent; the agent runs them and
    the last job's end closes the parent FINISHED with the counts."""
    agent = site_agent()
    proc = run_py("-m", "bench=sleep", "bench.params.seconds=0,0.1,0.2", "site=local",
                  *store.overrides(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 job(s) queued for site=local" in proc.stdout
    client = store.client()
    parent = next(r for r in store.runs("sleep") if "sweep.id" in r.data.tags)
    assert parent.data.tags["sweep.site"] == "local"
    assert wait_for(store, parent.info.run_id, ("FINISHED", "FAILED")) == "FINISHED", \
        agent.log()
    children = [r for r in store.runs("sleep")
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert {r.info.status for r in children} == {"FINISHED"}
    assert client.get_run(parent.info.run_id).data.metrics["jobs_finished"] == 3
    # the same sweep again: every job FINISHED already, nothing queued, the parent ends
    again = run_py("-m", "bench=sleep", "bench.params.seconds=0,0.1,0.2", "site=local",
                   *store.overrides(), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "nothing to queue" in again.stdout
    parents = [r for r in store.runs("sleep") if "sweep.id" in r.data.tags]
    assert [r.info.status for r in parents] == ["FINISHED", "FINISHED"]


def test_killed_agent_is_reaped_and_its_queue_picked_up(
        run_py: RunPy, store: Store, site_agent: Callable[..., SiteAgent],
        fault_report: Callable[[str, int, int, int], None]) -> None:
    """SIGKILL an agent with two runs on it: its Parsl processes are stopped and its runs
    reaped when an agent starts again: KILLED with failure.kind=agent_lost, or requeued
    once and FINISHED when the user asked for one retry; a run queued meanwhile runs."""
    agent = site_agent()
    lost = queued_id(run_py("bench=sleep", "bench.params.seconds=8", "site=local",
                            *store.overrides(), check=True).stderr)
    retried = queued_id(run_py("bench=sleep", "bench.params.seconds=2", "site=local",
                               "site.retries=1", *store.overrides(), check=True).stderr)
    for run_id in (lost, retried):
        wait_for(store, run_id, ("RUNNING",))
    client = store.client()
    record = next(r for r in store.runs("bench-sites") if r.info.status == "RUNNING")
    parsl = [int(x.split("@")[0]) for x in
             record.data.tags["driver.parsl_pids"].split(",") if x]
    assert parsl and all(psutil.pid_exists(p) for p in parsl)
    os.kill(agent.pid, signal.SIGKILL)
    time.sleep(0.5)
    later = queued_id(run_py(*NOOP, "site=local", *store.overrides(), check=True).stderr)
    agent.start()       # the restart reaps
    assert wait_for(store, lost, ("KILLED",)) == "KILLED"
    tags = client.get_run(lost).data.tags
    assert tags["failure.kind"] == "agent_lost" and tags["failure.stage"] == "agent"
    assert wait_for(store, retried, ("FINISHED", "FAILED")) == "FINISHED", agent.log()
    tags = client.get_run(retried).data.tags
    assert tags["site.attempt"] == "2" and "site.lost.1" in tags
    assert client.get_run(retried).data.params["site.claim.2"] == tags["site.agent"]
    assert wait_for(store, later, ("FINISHED", "FAILED")) == "FINISHED"
    assert client.get_run(record.info.run_id).info.status == "KILLED"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in parsl)
    fault_report("site agent SIGKILLed with 2 runs (1 retry)", 3,
                 sum(client.get_run(i).info.status in ("FINISHED", "KILLED")
                     for i in (lost, retried, later)), 0)


def test_idle_blocks_are_released_and_started_again(
        run_py: RunPy, store: Store, site_agent: Callable[..., SiteAgent]) -> None:
    """Parsl's strategy releases the agent's block after ``site.idle_min`` without work and
    starts a new one for the next run."""
    agent = site_agent("local", "site.idle_min=0.05")      # 3 s
    first = run_py(*NOOP, "site=local", "site.wait=true", *store.overrides(), timeout=120)
    assert first.returncode == 0, first.stderr
    blocks = []
    for _ in range(60):
        status = agent.bench("status").stdout
        blocks.append(next(ln for ln in status.splitlines() if "blocks:" in ln))
        if "none now" in blocks[-1]:
            break
        time.sleep(0.5)
    assert "none now" in blocks[-1], blocks
    second = run_py(*NOOP, "site=local", "site.wait=true", *store.overrides(), timeout=120)
    assert second.returncode == 0, second.stderr + agent.log()
    runs = store.runs("sleep")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    again = next(ln for ln in agent.bench("status").stdout.splitlines() if "blocks:" in ln)
    assert "none now" not in again and again != blocks[0], (blocks, again)


def test_queueing_needs_the_store(run_py: RunPy, tmp_path: Path) -> None:
    """With the tracking server unreachable, ``site=`` refuses in one line (exit 2) and
    writes nothing, not even to the spool: the queue is the store."""
    with socket.socket() as sock:           # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_py(*NOOP, "site=local", "tracking=server", f"tracking.uri=http://127.0.0.1:{port}",
                  f"tracking.spool={tmp_path}/spool", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot queue the run for site=local" in errors[0]
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir())
