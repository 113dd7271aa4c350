"""``bench compare`` and ``bench regress`` over synthetic SQLite stores, called in-process."""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runners.analysis.table import parse_since, pivot, render
from runners.cli.compare import add_parser as add_compare
from runners.cli.regress import add_parser as add_regress
from runners.tracking.query import StoreReader
from runners.tracking.tracker import Tracker
from tests.support import one_error

MACHINES = {"local": 1.0, "docker-slurm": 2.0}
FILESYSTEMS = {"tmpfs": 0.0, "scratch": 0.5}
RANKS = (1, 2, 4)
T0 = int(pd.Timestamp("2025-03-01T00:00:00Z").value // 10**6)   # series start, in ms
OLD = int(pd.Timestamp("2020-06-01T00:00:00Z").value // 10**6)
COMMIT = "{:02d}" + "abcdef0123456789" * 2 + "abcdef"            # 40 characters


def value(machine: str, fs: str, ranks: int, k: int) -> float:
    """The ``total_s.median`` of the k-th run of a grid point (median over k: k = 1)."""
    return MACHINES[machine] + FILESYSTEMS[fs] + 0.1 * ranks + 0.01 * k


def add_run(tracker: Tracker, experiment: str, params: Mapping[str, str],
            tags: Mapping[str, str], metrics: Mapping[str, float], status: str = "FINISHED",
            start_ms: int | None = None, parent: str | None = None) -> str:
    """One run: through ``Tracker.start_run``, or with a given start time when ``start_ms``."""
    if start_ms is None:
        run_id = tracker.start_run(experiment, "run", params, tags, parent_run_id=parent)
    else:
        run = tracker.online.client.create_run(tracker.experiment_id(experiment),
                                               start_time=start_ms,
                                        tags={**tags, "mlflow.runName": "run"}, run_name="run")
        run_id = str(run.info.run_id)
        for key, val in params.items():
            tracker.online.client.log_param(run_id, key, val)
    if metrics:
        tracker.log_metrics(run_id, metrics)
    tracker.end_run(run_id, status)
    return run_id


def point_tags(machine: str, fs: str, ranks: int, commit: str = COMMIT.format(0)) -> dict:
    return {"machine": machine, "fs": fs, "bench": "mpi4py_import", "git.commit": commit,
            "config.hash": f"h-{machine}-{fs}-{ranks}"}


def point_params(machine: str, ranks: int) -> dict[str, str]:
    return {"bench.ranks": str(ranks), "bench.trials": "3", "machine.name": machine}


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> str:
    """2 machines x 2 fs x 3 ranks x 3 FINISHED runs, plus runs the filters must handle."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('grid')}/mlflow.db"
    tracker = Tracker(uri)
    exp = "mpi4py_import"
    parent = add_run(tracker, exp, {}, {"sweep.id": "s1"}, {"total_s.median": 999.0})
    for machine in MACHINES:
        for fs in FILESYSTEMS:
            for ranks in RANKS:
                for k in range(3):
                    child = {"sweep.id": "s1"} if k == 0 else {}
                    add_run(tracker, exp, point_params(machine, ranks),
                            {**point_tags(machine, fs, ranks), **child},
                            {"total_s.median": value(machine, fs, ranks, k),
                             "total_s.min": value(machine, fs, ranks, k) - 0.5},
                            parent=parent if k == 0 else None)
    add_run(tracker, exp, point_params("local", 1),
            {**point_tags("local", "tmpfs", 1), "failure.kind": "timeout"},
            {"total_s.median": 100.0}, status="FAILED")
    add_run(tracker, exp, point_params("old-box", 1), point_tags("old-box", "tmpfs", 1),
            {"total_s.median": 50.0}, start_ms=OLD)
    add_run(tracker, "sleep", {"bench.ranks": "1", "bench.params.seconds": "1"},
            {"machine": "local", "fs": "tmpfs", "bench": "sleep", "direction.slept_s": "lower"},
            {"slept_s.median": 1.25, "total_s.median": 1.5})
    return uri


def bench(*argv: str) -> int:
    """Parse and run a verb in-process, as ``bench`` would."""
    p = argparse.ArgumentParser()
    v = p.add_subparsers(dest="verb")
    add_compare(v)
    add_regress(v)
    args = p.parse_args(list(argv))
    return int(args.func(args))


def csv_of(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


# ------------------------------------------------------------------------- runs_table


def test_runs_table_shape(grid: str) -> None:
    frame = StoreReader(grid).runs_table(None)
    assert len(frame) == 2 * 2 * 3 * 3 + 3          # grid + failed + old + sleep; no parent
    assert not (frame["tag.sweep.id"].notna() & frame["tag.mlflow.parentRunId"].isna()).any()
    assert list(frame.columns[:5]) == ["run_id", "experiment", "status", "start_time",
                                       "end_time"]
    assert str(frame["start_time"].dt.tz) == "UTC"
    assert frame["start_time"].is_monotonic_increasing
    assert frame["start_time"].iloc[0] == pd.Timestamp("2020-06-01", tz="UTC")
    assert {"param.bench.ranks", "tag.machine", "tag.config.hash",
            "metric.total_s.median"} <= set(frame.columns)
    assert frame["metric.total_s.median"].dtype == np.float64
    assert set(frame["experiment"]) == {"mpi4py_import", "sleep"}


def test_runs_table_filters(grid: str) -> None:
    tracker = StoreReader(grid)
    assert set(tracker.runs_table(["sleep"])["experiment"]) == {"sleep"}
    assert set(tracker.runs_table(None, status="FAILED")["tag.failure.kind"]) == {"timeout"}
    since = int(pd.Timestamp("2021-01-01", tz="UTC").value // 10**6)
    assert "old-box" not in set(tracker.runs_table(None, since_ms=since)["tag.machine"])
    newest = tracker.runs_table(None, max_runs=2)
    assert len(newest) == 2 and set(newest["experiment"]) == {"mpi4py_import", "sleep"}
    with pytest.raises(ValueError, match="mpi4py_import, sleep"):
        tracker.runs_table(["nosuch"])


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real SQLite store of 2,500 RUNNING runs (one create_run each), every 100th a sweep
    parent, newest first by index."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('paged')}/mlflow.db"
    client = Tracker(uri).online.client
    exp = client.create_experiment("e")
    for i in range(2500):
        tags = {"sweep.id": "s"} if i % 100 == 0 else {"machine": "m"}
        client.create_run(exp, start_time=10**12 - i, tags={**tags, "i": str(i)})
    return uri


def test_runs_table_reads_every_page(paged: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store read page by page (not in bulk, as a tracking server is) gives every run."""
    reader = StoreReader(paged)
    calls: list[dict[str, Any]] = []
    real = reader.client.search_runs

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(reader.client, "search_runs", spy)
    frame = reader.runs_table(None, status="RUNNING", since_ms=5, bulk=False)
    assert len(frame) == 2500 - 25
    assert [c["max_results"] for c in calls] == [1000, 1000, 1000]
    assert calls[0]["filter_string"] == ("attributes.status = 'RUNNING' and "
                                         "attributes.start_time >= 5")
    assert frame["tag.i"].iloc[-1] == "1" and frame["end_time"].isna().all()
    assert len(reader.runs_table(None, max_runs=1500, bulk=False)) == 1500
    assert len(calls) == 5
    bulk = reader.runs_table(None, status="RUNNING", since_ms=5)
    assert sorted(bulk["run_id"]) == sorted(frame["run_id"])


# ------------------------------------------------------------------------- compare


def test_compare_default_medians(grid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", grid, "--format", "csv",
                 "--experiment", "mpi4py_import") == 0
    table = csv_of(capsys.readouterr().out)
    assert list(table.columns) == ["machine", "fs", "bench.ranks", "total_s.median", "n"]
    assert len(table) == 2 * 2 * 3 + 1                 # + old-box; not the FAILED run
    for machine in MACHINES:
        for fs in FILESYSTEMS:
            for ranks in RANKS:
                row = table[(table["machine"] == machine) & (table["fs"] == fs)
                            & (table["bench.ranks"] == ranks)]
                assert row["total_s.median"].tolist() == [value(machine, fs, ranks, 1)]
                assert row["n"].tolist() == [3]
    assert table["machine"].tolist()[:3] == ["docker-slurm"] * 3   # sorted keys


@pytest.mark.parametrize(("agg", "k"), [("min", 0), ("max", 2), ("mean", 1)])
def test_compare_agg(grid: str, capsys: pytest.CaptureFixture[str], agg: str, k: int) -> None:
    assert bench("compare", "--tracking-uri", grid, "--format", "csv", "--agg", agg,
                 "--where", "machine=local", "--where", "fs=scratch") == 0
    table = csv_of(capsys.readouterr().out)
    assert table["bench.ranks"].tolist() == [1, 2, 4]
    expected = [value("local", "scratch", r, k) for r in RANKS]
    assert table["total_s.median"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_compare_pivot_columns_and_count(grid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", grid, "--format", "csv", "--by", "machine",
                 "--columns", "fs,bench.ranks", "--metric", "total_s.min",
                 "--experiment", "mpi4py_import", "--since", "2021-01-01") == 0
    table = csv_of(capsys.readouterr().out).set_index("machine")
    assert table.loc["local", "scratch/2"] == value("local", "scratch", 2, 1) - 0.5
    assert table.loc["docker-slurm", "tmpfs/4"] == value("docker-slurm", "tmpfs", 4, 1) - 0.5
    assert bench("compare", "--tracking-uri", grid, "--format", "csv", "--by", "machine",
                 "--columns", "fs", "--agg", "count") == 0
    counts = csv_of(capsys.readouterr().out).set_index(["experiment", "machine"])
    assert list(counts.columns) == ["scratch", "tmpfs"]   # experiment added: two benchmarks
    assert counts.loc[("mpi4py_import", "local"), "tmpfs"] == 3 * 3
    assert counts.loc[("mpi4py_import", "old-box"), "scratch"] == 0
    assert counts.loc[("sleep", "local"), "tmpfs"] == 1


def test_compare_status_any_and_since(grid: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("compare", "--tracking-uri", grid, "--format", "csv", "--experiment",
            "mpi4py_import", "--where", "machine=local", "--where", "bench.ranks=1")
    assert bench(*args, "--status", "any") == 0
    table = csv_of(capsys.readouterr().out).set_index("fs")
    assert table.loc["tmpfs", "n"] == 4                  # 3 FINISHED + the FAILED one
    middle = (value("local", "tmpfs", 1, 1) + value("local", "tmpfs", 1, 2)) / 2
    assert table.loc["tmpfs", "total_s.median"] == pytest.approx(middle, rel=1e-12)
    assert bench(*args, "--status", "failed") == 0
    assert csv_of(capsys.readouterr().out)["total_s.median"].tolist() == [100.0]
    old = ("compare", "--tracking-uri", grid, "--format", "csv", "--by", "machine")
    assert bench(*old) == 0
    assert "old-box" in csv_of(capsys.readouterr().out)["machine"].tolist()
    for since in ("2021-01-01", "7d", "2021-01-01T00:00+02:00"):
        assert bench(*old, "--since", since) == 0
        assert "old-box" not in csv_of(capsys.readouterr().out)["machine"].tolist()


def test_compare_where_any_of_values(grid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", grid, "--format", "csv", "--by", "machine",
                 "--where", "machine=local", "--where", "machine=old-box") == 0
    table = csv_of(capsys.readouterr().out)
    assert table[["experiment", "machine"]].to_numpy().tolist() == [
        ["mpi4py_import", "local"], ["mpi4py_import", "old-box"], ["sleep", "local"]]
    assert table["n"].tolist() == [3 * 3 * 2, 1, 1]
    assert bench("compare", "--tracking-uri", grid, "--format", "csv", "--by", "bench,machine",
                 "--where", "machine=local") == 0
    assert list(csv_of(capsys.readouterr().out).columns) == ["bench", "machine",
                                                            "total_s.median", "n"]


def test_compare_base_metric_and_experiment(grid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", grid, "--experiment", "sleep", "--metric",
                 "slept_s", "--by", "machine,bench.params.seconds") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("median of slept_s.median over 1 runs")
    assert out.splitlines()[-1].split() == ["local", "1", "1.25", "1"]


def test_compare_markdown_and_output(grid: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "table.md"
    assert bench("compare", "--tracking-uri", grid, "--format", "markdown",
                 "--experiment", "mpi4py_import", "--where",
                 "machine=local", "--where", "fs=tmpfs", "--output", str(target)) == 0
    assert "wrote" in capsys.readouterr().out
    lines = target.read_text().splitlines()
    assert lines[0] == "| machine | fs | bench.ranks | total_s.median | n |"
    assert lines[1] == "| --- | --- | ---: | ---: | ---: |"
    assert lines[2] == f"| local | tmpfs | 1 | {value('local', 'tmpfs', 1, 1):.6g} | 3 |"
    assert len(lines) == 2 + 3


def test_pivot_pure_sorts_numbers_and_marks_missing() -> None:
    frame = pd.DataFrame({"tag.machine": ["a", "a", "b", None],
                          "param.bench.ranks": ["16", "2", "2", "2"],
                          "metric.x": [1.0, 2.0, 3.0, 4.0]})
    out = pivot(frame, "metric.x", ["param.bench.ranks", "tag.machine"])
    assert out.to_dict("list") == {"bench.ranks": [2, 2, 2, 16], "machine": ["-", "a", "b", "a"],
                                   "x": [4.0, 2.0, 3.0, 1.0], "n": [1, 1, 1, 1]}
    assert render(out, "markdown").count("\n") == 2 + 4
    with pytest.raises(ValueError, match="agg"):
        pivot(frame, "metric.x", ["tag.machine"], agg="sum")


def test_parse_since_age() -> None:
    now = pd.Timestamp("2025-01-10T00:00:00Z")
    assert parse_since("7d", now) == pd.Timestamp("2025-01-03T00:00:00Z")
    assert parse_since("12h", now) == pd.Timestamp("2025-01-09T12:00:00Z")
    assert parse_since("2025-01-31") == pd.Timestamp("2025-01-31T00:00:00Z")


@pytest.mark.parametrize(("argv", "words"), [
    (["--metric", "nosuch"], ["unknown metric 'nosuch'", "total_s.median"]),
    (["--metric", "total_s.mediam"], ["total_s.median"]),
    (["--by", "machine,nosuch"], ["unknown --by column 'nosuch'", "machine", "bench.ranks"]),
    (["--columns", "fss"], ["unknown --columns column 'fss'", "fs"]),
    (["--where", "machine=nowhere"], ["no runs match", "machine=nowhere", "local"]),
    (["--where", "machine"], ["KEY=VALUE"]),
    (["--where", "nokey=1"], ["unknown --where column 'nokey'"]),
    (["--experiment", "nosuch"], ["no experiment 'nosuch'", "mpi4py_import, sleep"]),
    (["--since", "2099-01-01"], ["no runs match", "since=2099-01-01", "--status any"]),
    (["--since", "yesterday"], ["--since 'yesterday'", "7d"]),
    (["--agg", "sum"], ["--agg 'sum'", "median, mean, min, max, count"]),
    (["--format", "html"], ["--format 'html'", "table, csv, markdown"]),
    (["--status", "done"], ["--status 'done'", "FINISHED"]),
    (["--by", ","], ["--by ',' names no column"]),
])
def test_compare_bad_input(grid: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                           words: list[str]) -> None:
    assert bench("compare", "--tracking-uri", grid, *argv) == 2
    line = one_error(capsys)
    for word in words:
        assert word in line


def test_compare_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "none" / "mlflow.db"
    for verb in ("compare", "regress"):
        assert bench(verb, "--tracking-uri", f"sqlite:///{db}") == 2
        assert f"no store at {db}" in one_error(capsys)
    assert not db.parent.exists()


# ------------------------------------------------------------------------- regress


def add_series(tracker: Tracker, experiment: str, values: list[float], machine: str = "local",
               metric: str = "total_s.median", tags: Mapping[str, str] | None = None) -> list[str]:
    """Runs one minute apart, commit ``NN…`` for the n-th point; their ids, oldest first."""
    ids = []
    for i, v in enumerate(values):
        ids.append(add_run(tracker, experiment, point_params(machine, 2),
                           {**point_tags(machine, "tmpfs", 2, COMMIT.format(i)), **(tags or {})},
                           {metric: v}, start_ms=T0 + 60_000 * i))
    return ids


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    """One experiment per scenario: a 30% step, noise, 3 points, a dry run, higher-is-better."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('history')}/mlflow.db"
    tracker = Tracker(uri)
    rng = np.random.default_rng(7)
    noise = list(1.0 + 0.01 * rng.standard_normal(40))
    step = noise[:15] + [1.3 * v for v in noise[15:20]]
    drop = [100 * v for v in noise[:15]] + [70 * v for v in noise[15:20]]
    runs = {
        "step": add_series(tracker, "step", step),
        "noise": add_series(tracker, "noise", noise[20:40]),
        "short": add_series(tracker, "short", [1.0, 1.02, 0.99]),
        "dry": add_series(tracker, "dry", step),
        "drop": add_series(tracker, "higher", drop, machine="a", metric="bw.median",
                           tags={"direction.bw": "higher"}),
        "rise": add_series(tracker, "higher", [100 * v for v in step], machine="b",
                           metric="bw.median", tags={"direction.bw": "higher"}),
    }
    return uri, runs


def tags_of(uri: str, run_id: str) -> dict[str, str]:
    return dict(StoreReader(uri).client.get_run(run_id).data.tags)


def test_regress_finds_step(history: tuple[str, dict[str, list[str]]],
                            capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "step") == 1
    out = capsys.readouterr().out
    assert "regressions:" in out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("step"))
    change = next(w for w in row.split() if w.endswith("%"))
    assert "total_s.median" in row and 25 < float(change[:-1]) < 35  # about +30%
    assert COMMIT.format(14)[:7] in row and COMMIT.format(15)[:7] in row
    assert "2025-03-01 00:14" in row and "2025-03-01 00:15" in row
    assert f"{runs['step'][14][:12]}..{runs['step'][15][:12]}" in row
    assert "1 series checked, 1 regressions, 0 not enough data" in out
    newest = tags_of(uri, runs["step"][-1])
    assert newest["regress.total_s.median"] == "regression"
    assert 25 < float(newest["regress.total_s.median.change_pct"]) < 35
    assert "regress.total_s.median" not in tags_of(uri, runs["step"][-2])


def test_regress_csv_has_full_range(history: tuple[str, dict[str, list[str]]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "step", "--format", "csv",
                 "--dry-run", "--metric", "total_s") == 1
    out, err = capsys.readouterr()
    table = csv_of(out)
    assert table["runs"].tolist() == [f"{runs['step'][14]}..{runs['step'][15]}"]
    assert table["from"].tolist() == [f"2025-03-01T00:14:00+00:00 {COMMIT.format(14)}"]
    assert "1 series checked, 1 regressions" in err


def test_regress_noise_is_ok(history: tuple[str, dict[str, list[str]]],
                             capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "noise") == 0
    out = capsys.readouterr().out
    assert "no regressions" in out
    assert "1 series checked, 0 regressions, 0 not enough data" in out
    assert tags_of(uri, runs["noise"][-1])["regress.total_s.median"] == "ok"


def test_regress_short_series(history: tuple[str, dict[str, list[str]]],
                              capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "short") == 0
    out = capsys.readouterr().out
    assert "1 series checked, 0 regressions, 1 not enough data" in out
    tags = tags_of(uri, runs["short"][-1])
    assert tags["regress.total_s.median"] == "not enough data"
    assert "regress.total_s.median.change_pct" not in tags


def test_regress_dry_run_writes_nothing(history: tuple[str, dict[str, list[str]]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "dry", "--dry-run") == 1
    assert "dry run: no tags written" in capsys.readouterr().out
    for run_id in runs["dry"]:
        assert not any(k.startswith("regress.") for k in tags_of(uri, run_id))


def test_regress_direction_higher(history: tuple[str, dict[str, list[str]]],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "higher", "--all",
                 "--where", "machine=b") == 0            # a rise of a higher-is-better metric
    out = capsys.readouterr().out
    assert "0 regressions" in out and "1 improvements" in out
    assert tags_of(uri, runs["rise"][-1])["regress.bw.median"] == "improvement"
    assert bench("regress", "--tracking-uri", uri, "--experiment", "higher") == 1
    out = capsys.readouterr().out
    assert "2 series checked, 1 regressions" in out
    rows = [line for line in out.splitlines() if line.lstrip().startswith("higher")]
    change = next(w for w in rows[0].split() if w.endswith("%"))
    assert len(rows) == 1 and " a " in rows[0] and -35 < float(change[:-1]) < -25  # the drop
    assert tags_of(uri, runs["drop"][-1])["regress.bw.median"] == "regression"


def test_regress_noise_factor_passes_through(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A 25 % step at 5 % noise: 1.25 noise sigmas (about 6 %) pass it, 6 sigmas do not."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rng = np.random.default_rng(11)
    noise = list(1.0 + 0.05 * rng.standard_normal(30))
    add_series(Tracker(uri), "wide", noise[:20] + [1.25 * v for v in noise[20:]])
    assert bench("regress", "--tracking-uri", uri, "--dry-run") == 1
    assert bench("regress", "--tracking-uri", uri, "--dry-run", "--noise-factor", "6") == 0
    assert "0 regressions" in capsys.readouterr().out


def test_regress_min_effect_passes_through(history: tuple[str, dict[str, list[str]]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "step", "--dry-run",
                 "--min-effect", "40%") == 0
    assert "0 regressions" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "words"), [
    (["--metric", "nosuch"], ["unknown metric 'nosuch'", "total_s.median"]),
    (["--min-effect", "5"], ["--min-effect 5", "5%"]),
    (["--min-effect", "x"], ["--min-effect 'x'"]),
    (["--noise-factor", "-1"], ["--noise-factor '-1' is not a number in [0, 10]", "1.25"]),
    (["--alpha", "2"], ["--alpha '2'"]),
    (["--latest", "2"], ["--latest", "--min-points"]),
    (["--min-points", "one"], ["--min-points 'one'"]),
    (["--where", "machine=nowhere"], ["no runs match", "status=FINISHED", "machine has local"]),
    (["--format", "xml"], ["--format 'xml'"]),
])
def test_regress_bad_input(history: tuple[str, dict[str, list[str]]],
                           capsys: pytest.CaptureFixture[str], argv: list[str],
                           words: list[str]) -> None:
    uri, _ = history
    assert bench("regress", "--tracking-uri", uri, "--experiment", "short", *argv) == 2
    line = one_error(capsys)
    for word in words:
        assert word in line


# ------------------------------------------------- figures of merit: what is judged by default


@pytest.fixture(scope="module")
def merits(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two benchmarks declaring figures of merit: in ``imp`` the headline ``slowest_s`` is
    flat while a diagnostic (``load.median``) steps up 50%; ``lat`` has the curve ``lat``."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('merits')}/mlflow.db"
    tracker = Tracker(uri)
    rng = np.random.default_rng(3)
    for i in range(20):
        noise = 1.0 + 0.01 * rng.standard_normal(2)
        add_run(tracker, "imp", point_params("local", 2),
                {**point_tags("local", "tmpfs", 2), "fom": "slowest_s,total_s"},
                {"slowest_s.median": 2.0 * noise[0], "total_s.median": 3.0 * noise[1],
                 "load.median": 1.0 if i < 14 else 1.5}, start_ms=T0 + 60_000 * i)
        add_run(tracker, "lat", point_params("local", 2),
                {**point_tags("local", "tmpfs", 2), "fom": "lat", "direction.lat": "lower"},
                {"lat": 5.0 * noise[0], "total_s.median": 9.0}, start_ms=T0 + 60_000 * i)
    return uri


def test_regress_judges_only_figures_of_merit(merits: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("regress", "--tracking-uri", merits, "--dry-run", "--all",
                 "--format", "csv") == 0             # the diagnostic's step is not judged
    table = csv_of(capsys.readouterr().out)
    assert sorted(zip(table["experiment"], table["metric"], strict=True)) == [
        ("imp", "slowest_s.median"), ("imp", "total_s.median"), ("lat", "lat")]
    assert bench("regress", "--tracking-uri", merits, "--dry-run", "--metric",
                 "load.median") == 1                  # asked for, it is


def test_compare_shows_each_benchmarks_headline(merits: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", merits, "--format", "csv", "--by",
                 "machine") == 0
    table = csv_of(capsys.readouterr().out)
    assert list(table.columns) == ["experiment", "metric", "machine", "median", "n"]
    assert dict(zip(table["experiment"], table["metric"], strict=True)) == {
        "imp": "slowest_s.median", "lat": "lat"}
    assert table["n"].tolist() == [20, 20]
    assert bench("compare", "--tracking-uri", merits, "--experiment", "imp", "--format",
                 "csv", "--by", "machine") == 0
    one = csv_of(capsys.readouterr().out)
    assert list(one.columns) == ["machine", "slowest_s.median", "n"]


def test_report_draws_only_figures_of_merit(merits: str) -> None:
    from runners.report.build import load

    frame, metrics = load(merits, None, None)
    assert metrics == {"imp": ["slowest_s.median", "total_s.median"], "lat": ["lat"]}
    assert "metric.load.median" in frame.columns           # a diagnostic, kept out


# ------------------------------------------------------------------------- A/B compare

#: Per ranks: (baseline level, contender level) of slept_s and the trials each side.
AB_LEVELS = {1: (1.0, 1.3, 6), 2: (2.0, 1.6, 6), 4: (4.0, 4.0, 6), 16: (3.0, 6.0, 3)}


def add_trials(tracker: Tracker, params: Mapping[str, str], tags: Mapping[str, str],
               level: float, trials: int, status: str = "FINISHED",
               parent: str | None = None) -> str:
    """A run with ``trials`` per-trial values of slept_s (and rate = 1 / slept_s) around
    ``level`` (1% apart, so the sides' trials never overlap when the levels differ)."""
    run_id = tracker.start_run("sleep", "run", params, {
        "machine": "local", "fs": "tmpfs", "bench": "sleep", "fom": "slept_s,rate",
        "direction.slept_s": "lower", "direction.rate": "higher", **tags}, parent_run_id=parent)
    values = [level * (1 + 0.01 * t) for t in range(trials)]
    if status == "FINISHED":
        points = [(k, v, t) for t, x in enumerate(values)
                  for k, v in (("slept_s", x), ("rate", 1 / x))]
        points += [("slept_s.median", float(np.median(values)), 0),
                   ("rate.median", float(np.median([1 / x for x in values])), 0)]
        tracker.log_points(run_id, points)
    tracker.end_run(run_id, status)
    return run_id


def add_sweep(tracker: Tracker, sweep: str, side: int, seconds: str,
              failed: tuple[int, ...] = ()) -> tuple[str, list[str]]:
    """A sweep's parent run and one child per ranks of :data:`AB_LEVELS` (plus ranks 8)."""
    parent = tracker.start_run("sleep", f"sweep-{sweep}", {"sweep.overrides": "x"},
                               {"sweep.id": sweep, "bench": "sleep"})
    kids = []
    for ranks, (*levels, trials) in {**AB_LEVELS, 8: (1.0, 1.0, 6)}.items():
        params = {"bench.ranks": str(ranks), "bench.params.seconds": seconds,
                  "run_name": f"sleep#{ranks}-{side}"}
        kids.append(add_trials(tracker, params, {"sweep.id": sweep}, levels[side], trials,
                               "FAILED" if ranks in failed else "FINISHED", parent))
    tracker.end_run(parent)
    return parent, kids


@pytest.fixture(scope="module")
def ab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two sweeps of ``sleep`` (sweep.id sA: seconds=0.1, sB: seconds=0.2; sB's ranks=8
    failed), a run on another machine and an unrelated experiment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('ab')}/mlflow.db"
    tracker = Tracker(uri)
    base, base_kids = add_sweep(tracker, "sA", 0, "0.1")
    cont, cont_kids = add_sweep(tracker, "sB", 1, "0.2", failed=(8,))
    other = add_trials(tracker, {"bench.ranks": "1", "bench.params.seconds": "0.2"},
                       {"machine": "cluster"}, 1.0, 6)
    tracker.start_run("unrelated", "run", {"junk.param": "1"}, {"machine": "local"})
    return {"uri": uri, "base": base, "cont": cont, "base_kids": base_kids,
            "cont_kids": cont_kids, "other": other}


def ab_rows(ab: dict[str, Any], capsys: pytest.CaptureFixture[str], *argv: str,
            code: int = 0) -> pd.DataFrame:
    assert bench("compare", "--tracking-uri", ab["uri"], "--format", "csv", *argv) == code
    out = csv_of(capsys.readouterr().out)
    return out.set_index(["bench.ranks", "metric"]) if "bench.ranks" in out else out


def test_ab_marks_each_config_by_direction_and_significance(
        ab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    rows = ab_rows(ab, capsys, "--baseline", ab["base"], "--contender", ab["cont"],
                   "--metric", "all,slept_s")
    assert list(rows.columns) == ["machine", "fs", "baseline", "contender", "ratio", "p",
                                  "n", "mark"]
    assert len(rows) == 5 * 2            # each figure of merit once, though named twice
    marks = rows["mark"].to_dict()
    assert marks[(1, "slept_s.median")] == "+" and marks[(1, "rate.median")] == "+"
    assert marks[(2, "slept_s.median")] == "-" and marks[(2, "rate.median")] == "-"
    assert marks[(4, "slept_s.median")] == "~"            # same values: p = 1
    assert marks[(8, "slept_s.median")] == "x"            # the contender's run failed
    assert marks[(16, "slept_s.median")] == "n/a (need >= 4 trials each side)"
    one = rows.loc[(1, "slept_s.median")]
    assert one["baseline"] == pytest.approx(1.025) and one["contender"] == pytest.approx(1.3325)
    assert one["ratio"] == pytest.approx(1.3, abs=1e-3) and one["p"] < 0.01
    assert one["n"] == "6/6" and set(rows["machine"]) == {"local"}


def test_ab_text_names_the_by_design_keys_and_sums_up(
        ab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", ab["uri"], "--baseline", "sA",
                 "--contender", "sB") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "baseline sA (5 runs) vs contender sB (5 runs)"
    # run_name differs too, but it is no part of a config
    assert out[1] == "by design (differ between the sides, not matched): bench.params.seconds"
    assert out[-1].startswith("1 worse, 1 better, 1 unchanged, 1 n/a (too few trials), "
                              "1 missing or failed on one side")
    assert "slept_s.median" in out[3] and len(out) == 3 + 5 + 1      # headline only
    assert "rate.median" not in "\n".join(out)


def test_ab_markdown_is_a_pull_request_comment(
        ab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("compare", "--tracking-uri", ab["uri"], "--baseline", ab["base"],
                 "--contender", ab["cont"], "--format", "markdown") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "### Benchmark comparison: contender vs baseline"
    assert lines[2].startswith("**1 worse, 1 better, 1 unchanged")
    assert "`bench.params.seconds`" in lines[4]
    table = [ln for ln in lines if ln.startswith("|")]
    assert table[0] == ("| machine | fs | bench.ranks | metric | baseline | contender | ratio "
                        "| p | n | mark |")
    assert len(table) == 2 + 5 and "| 1.3 |" in table[2] and table[2].endswith("| + |")
    assert lines[-1].startswith("`+` worse, `-` better, `~` no significant change")


def test_ab_fail_on_regression_is_a_ci_gate(ab: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sides = ["--baseline", ab["base"], "--contender", ab["cont"], "--fail-on-regression"]
    ab_rows(ab, capsys, *sides, code=1)
    ab_rows(ab, capsys, *sides, "--where", "bench.ranks=2", code=0)     # only better
    # a larger factor or a stricter alpha makes the 30% step no regression
    ab_rows(ab, capsys, *sides, "--factor", "1.5", code=0)
    ab_rows(ab, capsys, *sides, "--alpha", "0.001", code=0)


def test_ab_sweep_ids_parent_ids_and_run_lists_are_the_same(
        ab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    by_parent = ab_rows(ab, capsys, "--baseline", ab["base"], "--contender", ab["cont"])
    by_tag = ab_rows(ab, capsys, "--baseline", "sA", "--contender", "sB")
    by_runs = ab_rows(ab, capsys, "--baseline", ",".join(ab["base_kids"]),
                      "--contender", ",".join(ab["cont_kids"]))
    pd.testing.assert_frame_equal(by_parent, by_tag)
    pd.testing.assert_frame_equal(by_parent, by_runs)
    few = ab_rows(ab, capsys, "--baseline", ab["base_kids"][0], "--contender",
                  f"{ab['cont_kids'][0]},{ab['other']}")
    assert list(few["metric"]) == ["slept_s.median"] * 2 and "bench.ranks" not in few
    assert sorted(few["machine"]) == ["cluster", "local"] and list(few["mark"]).count("x") == 1


def test_ab_reads_only_the_chosen_runs(ab: dict[str, Any]) -> None:
    from runners.tracking.trials import expand_ids, metric_history, runs_by_id

    ids = expand_ids(ab["uri"], ["sA", ab["cont"], ab["other"]])
    assert ids == {"sA": ab["base_kids"], ab["cont"]: ab["cont_kids"], ab["other"]: [ab["other"]]}
    frame = runs_by_id(ab["uri"], [ab["other"], ab["base_kids"][0]])
    assert list(frame["run_id"]) == [ab["base_kids"][0], ab["other"]]   # by start time
    assert "param.junk.param" not in frame and frame["experiment"].tolist() == ["sleep"] * 2
    full = StoreReader(ab["uri"]).runs_table(["sleep"])
    mine = full.set_index("run_id").loc[frame["run_id"], frame.columns[1:]].reset_index()
    pd.testing.assert_frame_equal(frame, mine.dropna(axis=1, how="all"), check_dtype=False)
    history = metric_history(ab["uri"], [ab["base_kids"][0]], ["slept_s", "nosuch"])
    assert list(history["step"]) == list(range(6)) and set(history["key"]) == {"slept_s"}
    assert history["value"].tolist() == pytest.approx([1 + 0.01 * t for t in range(6)])


@pytest.mark.parametrize(("argv", "words"), [
    (["--baseline", "sA"], ["--baseline needs --contender too"]),
    (["--contender", "sB"], ["--contender needs --baseline too"]),
    (["--baseline", "sA", "--contender", "nosuch,sB"], ["no run or sweep 'nosuch'"]),
    (["--baseline", "sA", "--contender", "sA"], ["is on both sides"]),
    (["--baseline", "sA", "--contender", "OTHER"],
     ["no config of the baseline matches", "machine (local vs cluster)"]),
    (["--baseline", "sA", "--contender", "sB", "--alpha", "5"], ["--alpha 5.0 is not between"]),
    (["--baseline", "sA", "--contender", "sB", "--factor", "0.9"], ["--factor 0.9 is below 1"]),
    (["--baseline", "sA", "--contender", "sB", "--metric", "nosuch"], ["unknown metric 'nosuch'"]),
    (["--baseline", "sA", "--contender", "sB", "--where", "bench.ranks=99"],
     ["the baseline (sA) has no runs matching --experiment/--where"]),
])
def test_ab_bad_input(ab: dict[str, Any], capsys: pytest.CaptureFixture[str],
                      argv: list[str], words: list[str]) -> None:
    argv = [ab["other"] if a == "OTHER" else a for a in argv]
    assert bench("compare", "--tracking-uri", ab["uri"], *argv) == 2
    line = one_error(capsys)
    for word in words:
        assert word in line


def test_ab_pure_rules() -> None:
    from runners.analysis.ab import by_design, judge, min_trials

    assert [min_trials(a) for a in (0.05, 0.01, 0.2)] == [4, 5, 3]
    assert judge([1.0] * 3, [2.0] * 3, 2.0, "lower", 0.05, 1.05)[0].startswith("n/a")
    # 3 against 5 trials can reach 0.05 (2 / C(8, 3) = 0.036)
    assert judge([1, 1.1, 1.2], [2, 2.1, 2.2, 2.3, 2.4], 2.0, "lower", 0.05, 1.05)[0] == "+"
    assert judge([1, 1.1, 1.2, 1.3], [2, 2.1, 2.2, 2.3], 1.8, "higher", 0.05, 1.05)[0] == "-"
    frame = pd.DataFrame({"side": ["baseline", "baseline", "contender"],
                          "param.v": ["a", "b", "c"], "param.n": ["1", "2", "2"],
                          "param.new": [None, None, "x"], "param.run_name": ["r", "r", "s"]})
    assert by_design(frame) == ["param.new", "param.v"]


def test_ab_runs_without_trials_count_one_value_each(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri)
    sides: dict[str, list[str]] = {"a": [], "b": []}
    for version, level in (("a", 1.0), ("b", 2.0)):
        for k in range(4):              # four nightly runs a side, medians only
            sides[version].append(add_run(
                tracker, "mpi4py_import", {"bench.ranks": "2", "version": version},
                point_tags("local", "tmpfs", 2), {"total_s.median": level + 0.01 * k}))
    assert bench("compare", "--tracking-uri", uri, "--format", "csv", "--baseline",
                 ",".join(sides["a"]), "--contender", ",".join(sides["b"])) == 0
    [row] = csv_of(capsys.readouterr().out).to_dict("records")
    assert (row["metric"], row["n"], row["mark"]) == ("total_s.median", "4/4", "+")
    assert row["ratio"] == pytest.approx(2.015 / 1.015, abs=1e-3)


def test_ab_reads_a_server_store_as_a_sql_one(ab: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The path for stores without SQL access (a tracking server): MlflowClient calls."""
    from runners.tracking import trials

    ids = [ab["base"], "sB", ab["other"]]
    bulk = (trials.expand_ids(ab["uri"], ids),
            trials.runs_by_id(ab["uri"], ab["base_kids"]),
            trials.metric_history(ab["uri"], ab["base_kids"], ["slept_s", "rate"]))
    monkeypatch.setattr(trials, "sql_engine", lambda uri: None)
    client = (trials.expand_ids(ab["uri"], ids),
              trials.runs_by_id(ab["uri"], ab["base_kids"]),
              trials.metric_history(ab["uri"], ab["base_kids"], ["slept_s", "rate"]))
    assert client[0] == bulk[0]
    pd.testing.assert_frame_equal(client[1], bulk[1], check_like=True)
    pd.testing.assert_frame_equal(client[2], bulk[2])
    with pytest.raises(ValueError, match="no run or sweep 'nosuch'"):
        trials.expand_ids(ab["uri"], ["nosuch"])


def test_ab_compare_sides_pure_skips_non_finite_values() -> None:
    from runners.analysis.ab import compare_sides

    frame = pd.DataFrame({
        "run_id": ["a", "b"], "experiment": ["e", "e"], "status": ["FINISHED"] * 2,
        "side": ["baseline", "contender"], "tag.machine": ["m", "m"], "tag.fs": ["f", "f"],
        "param.v": ["1", "2"], "metric.t.median": [1.0, 2.0]})
    steps = [("a", 1.0 + k / 100) for k in range(5)] + [("b", 2.0 + k / 100) for k in range(5)]
    history = pd.DataFrame({"run_id": [r for r, _ in steps] + ["a"], "key": "t",
                            "step": [*range(5), *range(5), 5],
                            "value": [v for _, v in steps] + [float("inf")]})
    rows, designed = compare_sides(frame, history, {"e": ["metric.t.median"]})
    assert designed == ["v"]
    assert rows.to_dict("records") == [{
        "machine": "m", "fs": "f", "metric": "t.median", "baseline": 1.02, "contender": 2.02,
        "ratio": 1.98, "p": pytest.approx(0.00794, abs=1e-5), "n": "5/5", "mark": "+"}]


def test_ab_config_leaves_out_the_site_and_its_claims() -> None:
    """A run queued through a site (``param.site.*``, an agent's ``site.claim.N``) matches
    the same config run directly: those params are no part of the config."""
    from runners.analysis.ab import config_params

    frame = pd.DataFrame({"param.bench.ranks": ["2"], "param.site.name": ["local"],
                          "param.site.claim.1": ["vm:1:2"], "param.tracking.uri": ["x"],
                          "param.machine.name": ["local"]})
    assert config_params(frame) == ["param.bench.ranks", "param.machine.name"]
