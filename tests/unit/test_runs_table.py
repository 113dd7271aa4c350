"""The bulk SQL read of a store gives the same table as MLflow's search_runs; verbs read
only the columns they use."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from runners.analysis.table import resolve_column, resolve_metric
from runners.cli.options import load_runs, verb_columns
from runners.errors import InputError
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


def test_only_the_columns_asked_for(store: Store) -> None:
    """``columns`` (names and patterns) reads only those keys, in bulk as page by page, and
    the table's attrs list what else the store has."""
    tracker = Tracker(store.uri, str(store.artifacts))
    for i in range(6):
        run_id = tracker.start_run("a", f"r{i}", {"bench.ranks": str(i % 3), "p2": "x"},
                                   {"machine": f"m{i % 2}", "direction.t": "lower",
                                    "other": "y"})
        tracker.log_metrics(run_id, {"t.median": 1.0 + i, "t.std": 0.1})
        tracker.end_run(run_id, "FINISHED")
    reader = StoreReader(store.uri)
    wanted = ["tag.machine", "tag.direction.*", "metric.*", "param.bench.ranks",
              "tag.nosuch"]
    full = reader.runs_table(None)
    for bulk in (True, False):
        part = reader.runs_table(None, columns=wanted, bulk=bulk)
        assert list(part.columns) == ["run_id", "experiment", "status", "start_time",
                                      "end_time", "param.bench.ranks", "tag.direction.t",
                                      "tag.machine", "metric.t.median", "metric.t.std"]
        pd.testing.assert_frame_equal(part, full[list(part.columns)], check_dtype=False)
        assert {"param.p2", "tag.other", "tag.machine"} <= set(part.attrs["stored_columns"])
    assert "stored_columns" not in full.attrs


def test_a_few_runs_of_a_big_store_are_read_by_run_id(store: Store) -> None:
    """A selection that is a small share of the store reads its rows by run id: the same
    table as a full scan."""
    tracker = Tracker(store.uri, str(store.artifacts))
    for i in range(12):
        run_id = tracker.start_run("big" if i else "small", f"r{i}", {"k": str(i)},
                                   {"machine": "m"})
        tracker.log_metrics(run_id, {"t.median": float(i)})
        tracker.end_run(run_id, "FINISHED")
    table = StoreReader(store.uri).runs_table(["small"])
    assert len(table) == 1 and table["param.k"].tolist() == ["0"]
    assert table["metric.t.median"].tolist() == [0.0] and table["tag.machine"].tolist() == ["m"]


def test_verbs_read_the_columns_they_use(store: Store) -> None:
    """compare and regress read their own columns plus those their options name; other
    verbs read all; a bad --by name still lists every tag of the store."""
    tracker = Tracker(store.uri, str(store.artifacts))
    run_id = tracker.start_run("a", "r", {"bench.ranks": "2", "unused": "u"},
                               {"machine": "m", "fs": "tmpfs", "stray": "s"})
    tracker.log_metrics(run_id, {"total_s.median": 1.0})
    tracker.end_run(run_id, "FINISHED")
    args = argparse.Namespace(verb="compare", tracking_uri=store.uri, where=["fs=tmpfs"],
                              since=None, experiment=None, by="machine,bench.ranks",
                              columns=None)
    assert verb_columns(argparse.Namespace(verb="scaling")) is None
    assert verb_columns(argparse.Namespace(verb="compare", baseline="s1")) is None   # A/B
    _, frame, _ = load_runs(args, "FINISHED")
    assert {"tag.machine", "tag.fs", "param.bench.ranks", "metric.total_s.median"} <= set(
        frame.columns)
    assert not {"param.unused", "tag.stray"} & set(frame.columns)
    with pytest.raises(InputError, match=r"tags: .*stray.*; params: .*unused"):
        resolve_column(frame, "nosuch")
    args.verb = "scaling"
    assert {"param.unused", "tag.stray"} <= set(load_runs(args, "FINISHED")[1].columns)


def test_verbs_read_the_metrics_they_judge(store: Store) -> None:
    """compare reads each benchmark's declared figures of merit (and the total_s.median
    fallback), regress those and every *.median; a bad --metric still lists all."""
    tracker = Tracker(store.uri, str(store.artifacts))
    for exp, fom in (("a", "lat"), ("b", None)):
        run_id = tracker.start_run(exp, "r", {}, {"fom": fom} if fom else {})
        tracker.log_metrics(run_id, {"lat.median": 1.0, "lat.std": 0.1, "other.median": 2.0,
                                     "total_s.median": 3.0, "curve": 4.0})
        tracker.end_run(run_id, "FINISHED")
    args = argparse.Namespace(verb="compare", tracking_uri=store.uri, where=None, since=None,
                              experiment=None, by="", columns=None, metric=None)
    reader = StoreReader(store.uri)
    assert reader.tag_values("fom") == ["lat"]
    _, frame, _ = load_runs(args, "FINISHED")
    assert sorted(c for c in frame.columns if c.startswith("metric.")) == [
        "metric.lat.median", "metric.total_s.median"]
    with pytest.raises(InputError, match=r"available: .*curve"):
        resolve_metric(frame, "nosuch")
    args.metric = "curve"
    assert "metric.curve" in load_runs(args, "FINISHED")[1].columns
    regress = argparse.Namespace(verb="regress", where=None, metric=None)
    assert (verb_columns(regress, reader) or [])[:5] == [
        "tag.fom", "metric.lat", "metric.lat.median", "metric.*.median", "tag.machine"]
    assert "metric.*" in (verb_columns(regress) or [])    # no store to ask: every metric
