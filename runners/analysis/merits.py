"""Figures of merit in a runs table: which metrics are performance series by default.

Every run records the figures of merit its kind declared (the ``fom`` tag, headline
first, e.g. ``slowest_rank_s,mean_rank_s,total_s``); everything else it logs is a
diagnostic (memory, load, bytes of log cut, ranks seen ...).  A figure of merit is judged
as ``<name>.median`` when it is a per-trial metric, else as ``<name>`` (a curve, at its last
step).  Runs recorded before figures of merit were declared have no ``fom`` tag: their
experiment's ``*.median`` metrics are judged, as before.  Pure functions over frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: The run tag listing a run's figures of merit, headline first.
FOM_TAG = "fom"


def declared(frame: pd.DataFrame) -> list[str]:
    """The figures of merit named by the runs' ``fom`` tags, in order of first appearance."""
    column = f"tag.{FOM_TAG}"
    names: list[str] = []
    if column in frame.columns:
        for value in frame[column].dropna():
            names += [n for n in str(value).split(",") if n and n not in names]
    return names


def has_values(frame: pd.DataFrame, metric: str) -> bool:
    """Whether ``metric.<metric>`` is a column with at least one value."""
    column = f"metric.{metric}"
    return column in frame.columns and bool(frame[column].notna().any())


def merit_metrics(frame: pd.DataFrame) -> dict[str, list[str]]:
    """``{experiment: [metric, ...]}``: the metrics judged by default in each experiment.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table (``experiment``, ``tag.fom``, ``metric.*``).

    Returns
    -------
    dict
        Per experiment, its figures of merit as judged metrics (``<name>.median`` or
        ``<name>``, headline first); for an experiment without ``fom`` tags, every
        ``*.median`` metric with a value.  Experiments with none are left out.
    """
    out: dict[str, list[str]] = {}
    for experiment, runs in frame.groupby("experiment", sort=True):
        names = declared(runs)
        if names:
            metrics = [next(m for m in (f"{n}.median", n) if has_values(runs, m))
                       for n in names if has_values(runs, f"{n}.median") or has_values(runs, n)]
        else:
            metrics = sorted(c.removeprefix("metric.") for c in runs.columns
                             if c.startswith("metric.") and c.endswith(".median")
                             and runs[c].notna().any())
        if metrics:
            out[str(experiment)] = metrics
    return out


def union(per_experiment: Mapping[str, Sequence[str]]) -> list[str]:
    """Every metric of a ``{experiment: metrics}`` mapping, once, in order."""
    return list(dict.fromkeys(m for metrics in per_experiment.values() for m in metrics))


def only(long: pd.DataFrame, per_experiment: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The rows of a long table (``experiment``, ``metric``) whose metric is one of their
    experiment's in ``per_experiment``."""
    pairs = {(e, m) for e, metrics in per_experiment.items() for m in metrics}
    keep = [(e, m) in pairs for e, m in zip(long["experiment"], long["metric"], strict=True)]
    return long[keep]
