"""Throughput, busy workers and queue wait per site, across runs (``bench analytics --site``)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from runners.analysis import throughput as ev
from runners.cli.main import main
from runners.tracking.tracker import Tracker
from tests.support import Store, one_error


def run_events(run_id: str, spans: list[tuple[float, float]], fail_at: float | None = None
               ) -> pd.DataFrame:
    """Events of one run: a task per ``(start, end)`` span, plus one that fails at
    ``fail_at`` after being launched a second earlier."""
    rows = []
    for i, (start, end) in enumerate(spans):
        rows += [(f"t#{i}", "submitted", start - 0.5), (f"t#{i}", "launched", start - 0.1),
                 (f"t#{i}", "running", start), (f"t#{i}", "done", end)]
    if fail_at is not None:
        rows += [("bad#0", "submitted", fail_at - 1.0), ("bad#0", "launched", fail_at - 1.0),
                 ("bad#0", "failed", fail_at)]
    return pd.DataFrame(rows, columns=["task", "state", "time"]).assign(run_id=run_id)


def synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Site a: r1 and r2 overlap (2 busy), r3 failed; site b: r4 alone; r5 has no site."""
    runs = pd.DataFrame({
        "run_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "status": ["FINISHED", "FINISHED", "FAILED", "FINISHED", "FINISHED", "SCHEDULED"],
        ev.SITE: ["a", "a", "a", "b", None, "b"],
        ev.QUEUED_AT: ["100", "100", "100", "200", None, "300"],
        ev.CLAIMED_AT: ["101", "102", "110", "200.5", None, None]})
    events = pd.concat([run_events("r1", [(110.0, 130.0)]),
                        run_events("r2", [(120.0, 140.0), (140.0, 150.0)]),
                        run_events("r3", [], fail_at=160.0),
                        run_events("r4", [(210.0, 240.0)]),
                        run_events("r5", [(100.0, 400.0)])], ignore_index=True)
    return runs, events


def test_site_names_are_the_distinct_site_tags() -> None:
    runs, _ = synthetic()
    assert ev.site_names(runs) == ["a", "b"]
    assert ev.site_names(runs.drop(columns=ev.SITE)) == []


def test_queue_wait_is_claimed_minus_queued_where_both_tags_exist() -> None:
    runs, _ = synthetic()
    assert ev.queue_waits(runs).tolist() == [1.0, 2.0, 10.0, 0.5]      # r6 is not claimed
    assert ev.queue_waits(runs.drop(columns=ev.CLAIMED_AT)).empty


def test_site_summaries_count_runs_tasks_rates_busy_workers_and_waits() -> None:
    runs, events = synthetic()
    table = ev.site_summaries(runs, events)
    assert table.index.tolist() == ["a", "b"]                          # r5 has no site
    a, b = table.loc["a"], table.loc["b"]
    assert (a["runs"], a["finished"], a["failed"], a["pending"]) == (3, 2, 1, 0)
    assert (a["tasks"], a["completed"], a["tasks_failed"]) == (4, 3, 1)
    assert a["span_s"] == 50.5                          # first submitted 109.5, last 160
    assert a["tasks_per_min"] == pytest.approx(60 * 3 / 50.5)
    assert a["runs_per_min"] == pytest.approx(60 * 2 / 50.5)
    assert a["peak_busy"] == 2                          # r1 and r2's first task overlap
    busy_seconds = 20 + 20 + 10 + 1                     # three tasks, the failed one's second
    assert a["mean_busy"] == pytest.approx(busy_seconds / 50.5)
    assert a["wait_median_s"] == 2.0
    assert a["wait_p95_s"] == pytest.approx(pd.Series([1.0, 2.0, 10.0]).quantile(0.95))
    assert (b["runs"], b["finished"], b["pending"], b["completed"]) == (2, 1, 1, 1)
    assert b["peak_busy"] == 1 and b["wait_median_s"] == 0.5 and b["waits"] == 1


def test_a_site_without_events_or_queue_tags_has_zero_rates_and_no_wait() -> None:
    runs, _ = synthetic()
    table = ev.site_summaries(runs.drop(columns=[ev.QUEUED_AT, ev.CLAIMED_AT]), None, ["b"])
    b = table.loc["b"]
    assert (b["runs"], b["tasks"], b["tasks_per_min"], b["runs_per_min"]) == (2, 0, 0, 0)
    assert b["waits"] == 0 and math.isnan(b["wait_median_s"]) and math.isnan(b["wait_p95_s"])


def test_curves_by_site_share_one_clock() -> None:
    runs, events = synthetic()
    tagged = ev.with_site(events, runs)
    assert tagged.loc[tagged["run_id"] == "r5", "site"].isna().all()
    tp = ev.throughput_by(tagged)
    assert set(tp["site"]) == {"a", "b"}                         # events without a site: none
    t0 = tagged["time"].min()                                   # r5's first event, 99.5
    b = tp[tp["site"] == "b"]
    assert b["completed"].tolist() == [0, 1, 1]                 # held to r5's end at 400
    assert b["time"].tolist() == [0.0, 240.0 - t0, 400.0 - t0]
    util = ev.utilization_by(tagged, t0=100.0)
    a = util[util["site"] == "a"]
    assert a["busy"].max() == 2 and a["time"].min() == 0.0
    assert dict(zip(a["time"], a["busy"], strict=False))[130.0 - 100.0] == 1   # r1 ended
    only_a = tagged[tagged["site"] == "a"]
    alone = ev.utilization(only_a.drop(columns="site"))
    a_util = ev.utilization_by(only_a)
    assert a_util["busy"].tolist() == alone["busy"].tolist()      # own clock when alone
    assert a_util["time"].tolist() == alone["time"].tolist()


# ------------------------------------------------- the verb on a store made with the Tracker

def site_store(store: Store, tmp_path: Path) -> dict[str, str]:
    """Runs of sites a and b (in two experiments) with events, and one run without a site."""
    runs, events = synthetic()
    tracker = Tracker(store.uri, str(store.artifacts))
    ids = {}
    for i, row in runs.iterrows():
        tags = {k[4:]: str(v) for k, v in row.items() if k.startswith("tag.") and pd.notna(v)}
        ids[row["run_id"]] = run_id = tracker.start_run(
            "sleep" if i % 2 else "osu", row["run_id"], {}, tags)
        mine = events[events["run_id"] == row["run_id"]].drop(columns="run_id")
        if len(mine):
            path = tmp_path / row["run_id"] / "events.csv"
            path.parent.mkdir()
            mine.to_csv(path, index=False)
            tracker.log_artifacts(run_id, [str(path)], "events")
        if row["status"] != "SCHEDULED":
            tracker.end_run(run_id, row["status"])
    return ids


def test_bench_analytics_per_site(store: Store, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    site_store(store, tmp_path)
    out = tmp_path / "plots"
    rc = main(["analytics", "--tracking-uri", store.uri, "--site", "b", "--site", "a",
               "--output", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0, lines
    assert lines[0].startswith("site b: 2 runs (1 finished, 0 failed, 1 queued or running); "
                               "1 tasks completed (0 failed) in 30.5 s")
    assert lines[0].endswith("queue wait median 0.50 s, p95 0.50 s")
    assert lines[1].startswith("site a: 3 runs (2 finished, 1 failed); 3 tasks completed "
                               "(1 failed) in 50.5 s; throughput 3.56 tasks/min, "
                               "2.38 runs/min; busy workers mean 1.01, peak 2")
    assert lines[2:] == [f"  {out / 'throughput.png'}", f"  {out / 'utilization.png'}"]
    assert (out / "utilization.png").stat().st_size > 1000

    assert main(["analytics", "--tracking-uri", store.uri, "--site", "all",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("site a: 3 runs") and "\nsite b: 2 runs" in text


def test_bad_site_input_is_one_line_and_writes_nothing(store: Store, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "plots"
    uri = ["--tracking-uri", store.uri, "--output", str(out)]
    assert main(["analytics", *uri, "--site", "a", "--run-id", "r1"]) == 2
    assert "give --site alone" in one_error(capsys)
    assert main(["analytics", *uri, "--since", "7d", "--sweep-id", "s"]) == 2
    assert "--since selects the runs of --site" in one_error(capsys)
    assert main(["analytics", *uri, "--site", "a"]) == 2                 # no store yet
    assert "no store at" in one_error(capsys)
    site_store(store, tmp_path)
    capsys.readouterr()                                  # MLflow's notes on a new store
    assert main(["analytics", *uri, "--site", "a,nope"]) == 2
    assert one_error(capsys) == (f"error: no runs with site 'nope' in {store.uri}; "
                                 "sites: a, b (or --site all)")
    assert main(["analytics", *uri, "--site", ","]) == 2
    assert "--site needs a site name" in one_error(capsys)
    assert main(["analytics", *uri, "--site", "a", "--since", "2999-01-01"]) == 2
    assert "no runs with a site tag in " in one_error(capsys)
    assert main(["analytics", *uri, "--site", "a", "--since", "soon"]) == 2
    one_error(capsys)
    assert not out.exists()
