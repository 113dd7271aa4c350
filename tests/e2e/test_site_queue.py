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
