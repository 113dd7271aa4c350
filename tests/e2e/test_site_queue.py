"""The store as a job queue (:mod:`runners.tracking.queue`) on a real SQLite store: many
processes racing for one queued run, exactly one claims it; a retried claim by the same
agent holds; a requeued run is claimed afresh under its next attempt's key."""

from __future__ import annotations

from runners.tracking.queue import QUEUED, claim, claim_key, queued_runs, set_status
from runners.tracking.writer import MlflowWriter
from tests.support import Store, claim_race, queued_run


def test_one_of_many_racing_agents_claims_a_run(store: Store) -> None:
    run_id = queued_run(store.uri)
    results = claim_race(store.uri, run_id)
    winners = [a for a, won in results.items() if won is True]
    assert len(winners) == 1, results
    params = MlflowWriter(store.uri).client.get_run(run_id).data.params
    assert params["site.claim.1"] == winners[0]
    # the winner's retried claim holds; a loser's does not
    writer = MlflowWriter(store.uri)
    assert claim(writer, run_id, "site.claim.1", winners[0]) is True
    loser = next(a for a in results if a != winners[0])
    assert claim(writer, run_id, "site.claim.1", loser) is False


def test_queue_lists_a_sites_runs_oldest_first_and_requeue_uses_a_new_key(
        store: Store) -> None:
    writer = MlflowWriter(store.uri)
    first = queued_run(store.uri)
    other = queued_run(store.uri, "there")
    second = queued_run(store.uri)
    assert queued_runs(writer, "here", 10) == [first, second]
    assert queued_runs(writer, "there", 10) == [other]
    assert queued_runs(writer, "here", 1) == [first]
    assert claim(writer, first, claim_key({"site.attempt": "1"}), "a") is True
    set_status(writer, first, "RUNNING")
    assert queued_runs(writer, "here", 10) == [second]
    # requeued after agent a was lost: attempt 2 is a new key, free for agent b
    writer.set_tags(first, {"site.attempt": "2"})
    set_status(writer, first, QUEUED)
    key = claim_key(dict(writer.client.get_run(first).data.tags))
    assert key == "site.claim.2"
    assert claim(writer, first, key, "b") is True
    assert claim(writer, first, key, "a") is False


def test_bench_site_queue_lists_and_cancel_takes_runs_out(store: Store) -> None:
    """``bench site queue`` lists queued runs; ``bench site cancel`` ends one KILLED
    (failure.kind=cancelled) through a claim, so it loses to an agent that claimed first;
    a run that is not queued, or unknown, is one line and exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import child_env

    bench = str(Path(sys.executable).with_name("bench"))

    def site(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([bench, "site", *args, "--tracking-uri", store.uri],
                              capture_output=True, text=True, env=child_env(), timeout=120)

    first, second, other = (queued_run(store.uri), queued_run(store.uri),
                            queued_run(store.uri, "there"))
    listed = site("queue")
    assert listed.returncode == 0
    assert [ln.split()[1] for ln in listed.stdout.splitlines()[1:-1]] == [first, second, other]
    assert "3 run(s) queued" in listed.stdout
    assert site("queue", "there").stdout.count(other) == 1
    assert first not in site("queue", "there").stdout
    writer = MlflowWriter(store.uri)
    assert claim(writer, second, "site.claim.1", "an-agent") is True     # taken meanwhile
    done = site("cancel", first, second)
    assert done.returncode == 1, done.stderr
    assert f"run {first} cancelled" in done.stdout and "an agent took it first" in done.stdout
    run = writer.client.get_run(first)
    assert run.info.status == "KILLED" and run.data.tags["failure.kind"] == "cancelled"
    assert writer.client.get_run(second).info.status == QUEUED    # the agent's to run
    again = site("cancel", first)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "is KILLED, not queued" in again.stderr
    unknown = site("cancel", "0" * 32)
    assert unknown.returncode == 2 and "no run 000" in unknown.stderr
    assert writer.client.get_run(other).info.status == QUEUED      # untouched


def test_a_queued_sweeps_parent_waits_for_every_job_it_announced(store: Store) -> None:
    """The parent closes when its last job ends, not when the jobs queued so far did
    (the submitter may still be queueing): ``sweep.to_run`` says how many there are."""
    from runners.site.sweeps import close_parent
    from runners.tracking.tracker import Tracker

    writer, tracker = MlflowWriter(store.uri), Tracker(store.uri)
    parent = writer.start_run("queue", "sweep", {}, {"sweep.site": "here", "sweep.to_run": "2"})
    set_status(writer, parent, QUEUED)
    experiment = writer.experiment_id("queue")

    def job(status: str) -> str:
        run_id = writer.start_run("queue", "job", {}, {"site": "here"}, parent)
        writer.end_run(run_id, status)
        return run_id

    first = job("FINISHED")
    close_parent(tracker, first, "here", {"mlflow.parentRunId": parent}, experiment)
    assert writer.client.get_run(parent).info.status == QUEUED      # one more to come
    second = job("FAILED")
    close_parent(tracker, second, "here", {"mlflow.parentRunId": parent}, experiment)
    run = writer.client.get_run(parent)
    assert run.info.status == "FAILED" and run.data.metrics["jobs_failed"] == 1
    assert run.data.tags["failure.kind"] == "jobs_failed"
