"""Tests of runners.analysis.stats: summarize and summarize_frame on hand-computed data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from runners.analysis.stats import STATS, summarize, summarize_frame

# 2, 4, 4, 4, 5, 5, 7, 9: sum 40, mean 5, middle pair (4, 5) so median 4.5; squared
# deviations 9+1+1+1+0+0+4+16 = 32, sample variance 32/7, std sqrt(32/7) = 2.13809.
SAMPLE = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
SAMPLE_STD = math.sqrt(32.0 / 7.0)


def test_summarize_hand_computed() -> None:
    s = summarize(SAMPLE)
    assert list(s) == list(STATS)
    assert s["min"] == 2.0
    assert s["max"] == 9.0
    assert s["mean"] == 5.0
    assert s["median"] == 4.5
    assert s["std"] == pytest.approx(2.1380899, abs=1e-7)
    assert s["std"] == pytest.approx(SAMPLE_STD, rel=1e-12)  # ddof=1, not the population 2.0
    assert s["cv"] == pytest.approx(SAMPLE_STD / 5.0, rel=1e-12)
    assert s["n"] == 8


def test_summarize_odd_count_and_order_independent() -> None:
    s = summarize(np.array([3.0, 1.0, 2.0]))
    assert (s["median"], s["mean"], s["std"], s["n"]) == (2.0, 2.0, 1.0, 3)
    assert summarize([9.0, 2.0, 5.0, 4.0, 7.0, 4.0, 5.0, 4.0]) == summarize(SAMPLE)


def test_summarize_single_value_has_zero_spread() -> None:
    s = summarize([3.5])
    assert s == {"min": 3.5, "median": 3.5, "mean": 3.5, "max": 3.5, "std": 0.0, "cv": 0.0,
                 "n": 1}


def test_summarize_cv_zero_mean_and_negative_mean() -> None:
    s = summarize([-1.0, 1.0])
    assert s["std"] == pytest.approx(math.sqrt(2.0))
    assert s["cv"] == 0.0  # mean is 0: defined as 0, not inf/nan
    assert summarize([-2.0, -4.0])["cv"] == pytest.approx(math.sqrt(2.0) / 3.0)  # std/|mean|


@pytest.mark.parametrize("bad", [[], np.array([]), [1.0, float("nan")]])
def test_summarize_rejects_empty_and_nan(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


def test_summarize_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        summarize(["a", "b"])


def test_summarize_frame_without_groups_matches_summarize() -> None:
    df = pd.DataFrame({"t": SAMPLE, "bw": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]})
    out = summarize_frame(df, ["t", "bw"])
    assert len(out) == 1
    assert list(out.columns) == [f"{m}.{s}" for m in ("t", "bw") for s in STATS]
    for metric in ("t", "bw"):
        expected = summarize(df[metric])
        for stat, value in expected.items():
            assert out[f"{metric}.{stat}"].iloc[0] == pytest.approx(value, rel=1e-12)


def test_summarize_frame_groups_nan_and_single_rows() -> None:
    df = pd.DataFrame({
        "host": ["a", "a", "a", "b", "c"],
        "ranks": [1, 1, 2, 1, 1],
        "t": [1.0, 3.0, 10.0, 4.0, np.nan],
    })
    out = summarize_frame(df, "t", by=["host", "ranks"])
    assert list(out.columns[:2]) == ["host", "ranks"]
    assert out[["host", "ranks"]].to_numpy().tolist() == [["a", 1], ["a", 2], ["b", 1], ["c", 1]]
    first = out.iloc[0]
    assert (first["t.mean"], first["t.median"], first["t.n"]) == (2.0, 2.0, 2)
    assert first["t.std"] == pytest.approx(math.sqrt(2.0))
    assert first["t.cv"] == pytest.approx(math.sqrt(2.0) / 2.0)
    assert out.iloc[1]["t.std"] == 0.0 and out.iloc[1]["t.cv"] == 0.0  # one value
    last = out.iloc[3]  # only NaN: no value, NaN statistics
    assert last["t.n"] == 0 and math.isnan(last["t.mean"]) and math.isnan(last["t.std"])


def test_summarize_frame_errors() -> None:
    df = pd.DataFrame({"t": [1.0], "name": ["x"]})
    with pytest.raises(KeyError):
        summarize_frame(df, "missing")
    with pytest.raises(TypeError):
        summarize_frame(df, "name")
    with pytest.raises(ValueError):
        summarize_frame(df.iloc[:0], "t")
    with pytest.raises(ValueError):
        summarize_frame(df, [])
