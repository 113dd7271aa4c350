"""The "Scaling" section of ``bench report``: a strong-scaling table per curve of every sweep
over ranks in the report's runs (pure functions).

A study is the FINISHED runs of one sweep (tag ``sweep.id``) with at least two distinct
``bench.ranks``; its metric is its experiment's first drawn metric (the headline figure of
merit by default).  Curves and figures are those of ``bench scaling``
(:mod:`runners.analysis.scaling`), always in strong mode: the report cannot know whether
a sweep held the total work or the work per rank fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runners.analysis.scaling import AXES, COLUMNS, curve_keys, curves, scaling_table, x_column
from runners.analysis.series import direction_column
from runners.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

SWEEP = "tag.sweep.id"
X = f"param.{AXES['ranks']}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def studies(frame: pd.DataFrame,
            metrics: Mapping[str, Sequence[str]]) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The scaling studies of a runs table: what the page shows and the data as one table.

    Parameters
    ----------
    frame : pandas.DataFrame
        The report's runs table.
    metrics : mapping
        ``{experiment: metrics drawn}`` (see :func:`runners.report.build.load`); the first
        is the study's metric.

    Returns
    -------
    list of dict
        Per study (ordered by experiment and sweep): ``experiment``, ``sweep``,
        ``metric``, ``machines`` (text), ``runs``, ``columns`` (x and
        :data:`runners.analysis.scaling.COLUMNS`) and ``curves``, each with ``name`` and
        ``rows`` (cells as text).
    pandas.DataFrame
        Every row of every study, with ``experiment``, ``sweep`` and ``metric`` columns
        first (empty without a study).
    """
    import pandas as pd

    out: list[dict[str, Any]] = []
    parts = []
    if SWEEP not in frame.columns or X not in frame.columns:
        return out, pd.DataFrame()
    done = frame[(frame["status"] == "FINISHED") & frame[SWEEP].notna()]
    for (experiment, sweep), runs in done.groupby(["experiment", SWEEP], sort=True):
        names = list(metrics.get(str(experiment), []))
        metric = f"metric.{names[0]}" if names else ""
        if metric not in runs.columns:
            continue
        runs = runs[runs[metric].notna()]
        if runs[X].nunique() < 2:
            continue
        direction = direction_column(runs, names[0])
        higher = direction is not None and "higher" in set(runs[direction].dropna())
        try:
            table = scaling_table(runs, X, metric, curve_keys(runs, X), "strong", higher)
        except InputError:     # not a study: a non-numeric rank count, a value <= 0
            continue
        x = x_column(table)
        machine = runs.get("tag.machine", pd.Series(dtype=object))
        machines = sorted({str(m) for m in machine.dropna()})
        out.append({"experiment": str(experiment), "sweep": str(sweep), "metric": names[0],
                    "machines": ", ".join(machines) or "-", "runs": len(runs),
                    "columns": [x, *COLUMNS],
                    "curves": [{"name": name, "rows": [[_cell(v) for v in row] for row in
                                                        rows[[x, *COLUMNS]].itertuples(
                                                            index=False, name=None)]}
                               for name, rows in curves(table)]})
        parts.append(table.assign(experiment=str(experiment), sweep=str(sweep),
                                  metric=names[0])
                     .pipe(lambda t: t[["experiment", "sweep", "metric",
                                        *t.columns[:-3]]]))
    return out, (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
