"""The computation of ``bench scaling`` (runners/analysis/scaling.py) on small frames whose
figures are worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from runners.analysis.scaling import curve_keys, curves, scaling_table, x_column
from runners.errors import InputError

X = "param.bench.ranks"
T = "metric.total_s.median"


def runs(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """A runs table: ``(fs, ranks, time)`` per run, params as strings as the store has them."""
    return pd.DataFrame({"experiment": "sleep", "tag.machine": "local",
                         "tag.fs": [r[0] for r in rows], X: [str(r[1]) for r in rows],
                         T: [r[2] for r in rows]})


#: tmpfs: 3 runs at 1 rank (median 10), then 6 s at 2 and 4 s at 4 ranks.
#: scratch: starts at 2 ranks (its own x1), 8 s, then 5 s at 4 ranks.
STUDY = runs([("tmpfs", 1, 10.0), ("tmpfs", 1, 14.0), ("tmpfs", 1, 9.0), ("tmpfs", 2, 6.0),
              ("tmpfs", 4, 4.0), ("scratch", 2, 8.0), ("scratch", 4, 5.0),
              ("scratch", 4, float("nan"))])


def column(table: pd.DataFrame, name: str) -> list[float]:
    return [round(float(v), 6) for v in table[name]]


def test_strong_scaling_by_hand() -> None:
    table = scaling_table(STUDY, X, T, ["tag.fs"], "strong")
    assert list(table.columns) == ["fs", "bench.ranks", "runs", "median", "ideal", "speedup",
                                   "efficiency"]
    assert table["fs"].tolist() == ["scratch", "scratch", "tmpfs", "tmpfs", "tmpfs"]
    assert table["bench.ranks"].tolist() == [2, 4, 1, 2, 4]      # numbers, not "1", "2"
    assert table["runs"].tolist() == [1, 1, 3, 1, 1]             # the NaN run is left out
    assert column(table, "median") == [8.0, 5.0, 10.0, 6.0, 4.0]
    # ideal t1 * x1 / x: scratch from (2, 8 s), tmpfs from (1, 10 s)
    assert column(table, "ideal") == [8.0, 4.0, 10.0, 5.0, 2.5]
    # speed-up t1 / t
    assert column(table, "speedup") == [1.0, 1.6, 1.0, round(10 / 6, 6), 2.5]
    # efficiency speed-up / (x / x1)
    assert column(table, "efficiency") == [1.0, 0.8, 1.0, round(10 / 12, 6), 0.625]


def test_weak_scaling_by_hand() -> None:
    study = runs([("tmpfs", 1, 10.0), ("tmpfs", 2, 11.0), ("tmpfs", 4, 12.5),
                  ("tmpfs", 8, 8.0)])
    table = scaling_table(study, X, T, [], "weak")
    assert list(table.columns) == ["bench.ranks", "runs", "median", "ideal", "speedup",
                                   "efficiency"]
    assert column(table, "ideal") == [10.0] * 4                  # the time stays t1
    assert column(table, "efficiency") == [1.0, round(10 / 11, 6), 0.8, 1.25]   # t1 / t
    # the scaled speed-up (x / x1) * t1 / t
    assert column(table, "speedup") == [1.0, round(20 / 11, 6), 3.2, 10.0]


def test_a_wrong_ideal_or_speedup_would_show() -> None:
    """Perfect strong scaling (t halves as ranks double) is efficiency 1 everywhere, and
    no scaling at all (t constant) is efficiency x1 / x; a weak study with constant t is
    efficiency 1."""
    perfect = runs([("tmpfs", r, 16.0 / r) for r in (1, 2, 4, 8)])
    strong = scaling_table(perfect, X, T, [], "strong")
    assert column(strong, "ideal") == column(strong, "median")
    assert column(strong, "speedup") == [1.0, 2.0, 4.0, 8.0]
    assert column(strong, "efficiency") == [1.0] * 4
    flat = runs([("tmpfs", r, 3.0) for r in (2, 4, 8)])
    strong = scaling_table(flat, X, T, [], "strong")
    assert column(strong, "ideal") == [3.0, 1.5, 0.75]
    assert column(strong, "speedup") == [1.0, 1.0, 1.0]
    assert column(strong, "efficiency") == [1.0, 0.5, 0.25]
    weak = scaling_table(flat, X, T, [], "weak")
    assert column(weak, "ideal") == [3.0] * 3 and column(weak, "efficiency") == [1.0] * 3
    assert column(weak, "speedup") == [1.0, 2.0, 4.0]


def test_a_rate_is_read_as_one_over_a_time() -> None:
    rates = runs([("tmpfs", 1, 100.0), ("tmpfs", 2, 180.0), ("tmpfs", 4, 300.0)])
    strong = scaling_table(rates, X, T, [], "strong", higher=True)
    assert column(strong, "ideal") == [100.0, 200.0, 400.0]
    assert column(strong, "speedup") == [1.0, 1.8, 3.0]
    assert column(strong, "efficiency") == [1.0, 0.9, 0.75]
    weak = scaling_table(rates, X, T, [], "weak", higher=True)
    assert column(weak, "ideal") == [100.0] * 3
    assert column(weak, "efficiency") == [1.0, 1.8, 3.0]


def test_bad_studies_are_input_errors() -> None:
    with pytest.raises(InputError, match="at least two distinct bench.ranks values; the "
                                         "matching runs have only bench.ranks=2"):
        scaling_table(runs([("tmpfs", 2, 1.0), ("scratch", 2, 2.0)]), X, T, ["tag.fs"])
    with pytest.raises(InputError, match="positive number in every run; got four"):
        scaling_table(runs([("tmpfs", 1, 1.0)]).assign(**{X: ["four"]}), X, T)
    with pytest.raises(InputError, match="values <= 0"):
        scaling_table(runs([("tmpfs", 1, 1.0), ("tmpfs", 2, 0.0)]), X, T)
    with pytest.raises(ValueError, match="mode must be one of strong, weak"):
        scaling_table(STUDY, X, T, [], "sideways")


def test_curve_keys_split_by_what_differs_at_one_x() -> None:
    """fs splits; bench.trials too (1 and 3 trials at 2 ranks); a weak-scaling size that
    follows the ranks does not, nor the run name, nor fs.name (it splits no further than
    fs); machine and experiment take one value."""
    study = runs([("tmpfs", 1, 4.0), ("tmpfs", 2, 4.2), ("scratch", 1, 5.0),
                  ("scratch", 2, 5.5), ("tmpfs", 2, 4.4)])
    study["param.fs.name"] = study["tag.fs"]
    study["param.bench.params.n"] = study[X].map({"1": "100", "2": "200"})
    study["param.bench.trials"] = ["1", "1", "1", "1", "3"]
    study["param.run_name"] = [f"run#{k}" for k in range(5)]
    assert curve_keys(study, X) == ["tag.fs", "param.bench.trials"]
    table = scaling_table(study, X, T, curve_keys(study, X), "strong")
    assert [name for name, _ in curves(table)] == [
        "fs=scratch, bench.trials=1", "fs=tmpfs, bench.trials=1", "fs=tmpfs, bench.trials=3"]
    assert x_column(table) == "bench.ranks"
    assert curve_keys(study[study["tag.fs"] == "tmpfs"].iloc[:2], X) == []
    assert [name for name, _ in curves(scaling_table(study, X, T))] == ["all runs"]


def test_by_nodes_ranks_that_follow_the_nodes_do_not_split() -> None:
    """``machine.nodes=1,2,4 bench.ranks=${machine.nodes} fs=tmpfs,scratch``."""
    nodes = "param.machine.nodes"
    study = pd.DataFrame({"experiment": "mpi4py_import", "tag.machine": "docker-slurm",
                          "tag.fs": ["tmpfs", "scratch"] * 3,
                          nodes: ["1", "1", "2", "2", "4", "4"],
                          X: ["1", "1", "2", "2", "4", "4"],
                          T: [1.0, 2.0, 1.1, 2.4, 1.3, 3.2]})
    assert curve_keys(study, nodes) == ["tag.fs"]
    table = scaling_table(study, nodes, T, ["tag.fs"], "weak")
    assert table.columns[1] == "machine.nodes"
    assert column(table, "efficiency") == [1.0, round(2 / 2.4, 6), 0.625,
                                           1.0, round(1 / 1.1, 6), round(1 / 1.3, 6)]
