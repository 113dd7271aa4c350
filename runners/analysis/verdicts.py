"""The verdicts of ``bench regress`` and ``bench baseline``: series cut at their accepted
steps, judged at the latest step or against their reference, ignores applied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runners.analysis.annotations import (
    active_ignores,
    annotate,
    describe_accept,
    id_column,
    since_accepted,
)
from runners.analysis.reference import reference_frame
from runners.analysis.series import SERIES_KEYS, judge_series, series_frame

if TYPE_CHECKING:
    import pandas as pd

#: What the newest runs are judged against: the level before the latest step, or the
#: reference band learnt from the accepted history.
AGAINST = ("step", "reference")


def prepared(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The long series table of ``metrics`` with its annotations, each series from its
    newest accepted step on."""
    return since_accepted(annotate(series_frame(frame, metrics), frame))


def judge_all(frame: pd.DataFrame, metrics: Sequence[str], against: str,
              options: dict[str, Any], ref_options: dict[str, Any]
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge every series: ``(verdict rows, the long table they were judged from)``.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table of FINISHED runs.
    metrics : sequence of str
        The metrics to judge.
    against : {"step", "reference"}
        See :data:`AGAINST`.
    options, ref_options : dict
        Keywords of :func:`runners.analysis.regress.judge` and of
        :func:`runners.analysis.reference.walk`.

    Returns
    -------
    tuple of pandas.DataFrame
        The verdicts (``regress_frame`` columns plus ``series``, ``accepted`` (who
        accepted the level the series is judged from) and, with ``reference``, the band)
        and the long table.
    """
    long = prepared(frame, metrics)
    if against == "reference":
        result = reference_frame(long, **ref_options)
    else:
        result = judge_series(long, **options)
    return with_annotations(result, long), long


def with_annotations(result: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """Add ``series`` and ``accepted`` to verdict rows and turn the regressions of
    ignored series into status ``ignored`` (their reason says what was found)."""
    out = result.copy()
    out["series"] = id_column(out) if len(out) else []
    keys = list(SERIES_KEYS)
    first = long.groupby(keys, sort=False)["accepted"].first()
    accepted = [describe_accept(first.get(tuple(k))) if isinstance(first.get(tuple(k)), str)
                else "" for k in out[keys].itertuples(index=False, name=None)]
    out["accepted"] = accepted
    for key, ignore in active_ignores(long).items():
        rows = (out[keys] == list(key)).all(axis=1) & (out["status"] == "regression")
        out.loc[rows, "reason"] = ignore.text() + "; found: " + out.loc[rows, "reason"]
        out.loc[rows, "status"] = "ignored"
    return out
