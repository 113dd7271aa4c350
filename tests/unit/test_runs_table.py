"""The bulk SQL read of a store gives the same table as MLflow's search_runs."""

from __future__ import annotations

import pandas as pd

from runners.tracking.query import StoreReader
from runners.tracking.tracker import Tracker
from tests.support import Store


def test_bulk_read_equals_search_runs(store: Store) -> None:
    tracker = Tracker(store.uri, str(store.artifacts))
    parent = tracker.start_run("a", "sweep", {"sweep.overrides": "x"}, {"sweep.id": "s1"})
    for i in range(12):
        exp = "a" if i % 3 else "b"
        run_id = tracker.start_run(exp, f"r{i}", {"bench.ranks": str(i % 4), "only": "x"}
                                   if i == 5 else {"bench.ranks": str(i % 4)},
                                   {"machine": f"m{i % 2}", "sweep.id": "s1"},
                                   parent_run_id=parent if i < 6 else None)
        tracker.log_metrics(run_id, {"total_s.median": 1.0 + i, "nan": float("nan")})
        tracker.log_metrics(run_id, {"total_s.median": 2.0 + i}, step=1)    # latest wins
        tracker.end_run(run_id, "FAILED" if i == 7 else "FINISHED")
    tracker.end_run(parent)
    reader = StoreReader(store.uri)
    for kwargs in ({}, {"status": "FINISHED"}, {"max_runs": 5}):
        bulk = reader.runs_table(None, **kwargs)
        search = reader.runs_table(None, bulk=False, **kwargs)
        assert list(bulk.columns) == list(search.columns)
        key = ["start_time", "run_id"]
        pd.testing.assert_frame_equal(bulk.sort_values(key).reset_index(drop=True),
                                      search.sort_values(key).reset_index(drop=True),
                                      check_dtype=False)
    table = reader.runs_table(["a"])
    assert "sweep" not in set(table["run_id"])                     # the parent is left out
    assert "param.sweep.overrides" not in table.columns
    assert table["metric.nan"].isna().all() and table["metric.total_s.median"].min() == 3.0
