"""Regression verdicts per series over the runs table (StoreReader.runs_table), on top of
:func:`runners.analysis.regress.judge_frame`.

A series is one metric of one (experiment, machine, fs, ``config.hash``) over runs ordered
by start time.  Pure functions: pandas frames in, frames or tag mappings out; pandas (and
the judge) are imported inside functions so that importing this module stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runners.analysis.table import MISSING

if TYPE_CHECKING:
    import pandas as pd

#: Identify a series for ``regress``: with the experiment and the metric, these tags.
SERIES_TAGS = {"machine": "tag.machine", "fs": "tag.fs", "config_hash": "tag.config.hash"}
SERIES_KEYS = ("experiment", "metric", *SERIES_TAGS)
#: ``judge`` statuses as written to the ``regress.<metric>`` tag.
VERDICT_TAG = {"regression": "regression", "improvement": "improvement", "no change": "ok",
               "not enough data": "not enough data", "ignored": "ignored"}
#: Summary statistics that keep the direction of their base metric (std, cv: lower is better).
DIRECTED_STATS = ("median", "mean", "min", "max")


def direction_column(frame: pd.DataFrame, metric: str) -> str | None:
    """The ``tag.direction.<base>`` column that gives a metric's better direction, if any.

    ``osu_latency`` uses ``direction.osu_latency``; ``slept_s.median`` (and ``.mean``,
    ``.min``, ``.max``) use ``direction.slept_s``; spreads (``.std``, ``.cv``) have none:
    lower is better whatever the metric.
    """
    if f"tag.direction.{metric}" in frame.columns:
        return f"tag.direction.{metric}"
    base, _, stat = metric.rpartition(".")
    if base and stat in DIRECTED_STATS and f"tag.direction.{base}" in frame.columns:
        return f"tag.direction.{base}"
    return None


def series_frame(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The long table of :func:`regress_frame`: one row per run and metric with a value.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table (``run_id``, ``experiment``, ``start_time``, ``tag.*``, ``metric.*``).
    metrics : sequence of str
        Metric names (without ``metric.``), each a column of the frame.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SERIES_KEYS` (a missing tag is ``"-"``), ``run_id``, ``start_time``,
        ``commit`` (``""`` if unknown), ``direction`` (the series' newest run's, default
        ``"lower"``) and ``value`` (finite), sorted by start time (stable).
    """
    import numpy as np
    import pandas as pd

    def tag(column: str, default: str) -> pd.Series:
        if column not in frame.columns:
            return pd.Series(default, index=frame.index, dtype=object)
        return frame[column].astype(object).where(frame[column].notna(), default)

    parts = []
    for metric in metrics:
        dcol = direction_column(frame, metric)
        direction = tag(dcol, "lower") if dcol else pd.Series("lower", index=frame.index)
        part = pd.DataFrame({
            "experiment": frame["experiment"].astype(str), "metric": metric,
            **{key: tag(col, MISSING) for key, col in SERIES_TAGS.items()},
            "run_id": frame["run_id"], "start_time": frame["start_time"],
            "commit": tag("tag.git.commit", ""),
            "direction": direction.where(direction.isin(["lower", "higher"]), "lower"),
            "value": frame[f"metric.{metric}"].astype("float64").replace([np.inf, -np.inf],
                                                                         np.nan),
        })
        parts.append(part[part["value"].notna()])
    columns = [*SERIES_KEYS, "run_id", "start_time", "commit", "direction", "value"]
    if not parts:
        return pd.DataFrame(columns=columns)
    long = pd.concat(parts, ignore_index=True).sort_values("start_time", kind="stable")
    long["direction"] = long.groupby(list(SERIES_KEYS))["direction"].transform("last")
    return long[columns].reset_index(drop=True)


def regress_frame(frame: pd.DataFrame, metrics: Sequence[str], **options: Any) -> pd.DataFrame:
    """Judge every series of some metrics of a runs table with ``judge_frame``.

    A series is one metric of one (experiment, machine, fs, ``config.hash``), ordered by
    start time; its better direction is the ``direction.<metric>`` tag of its newest run
    (see :func:`direction_column`), else ``"lower"``.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table, normally of FINISHED runs only.
    metrics : sequence of str
        Metric names (without ``metric.``).
    **options
        Passed to :func:`runners.analysis.regress.judge_frame` (``min_effect``, ``alpha``,
        ``latest``, ``baseline``, ``min_points``, ``max_points``, ``penalty`` ...).

    Returns
    -------
    pandas.DataFrame
        One row per series, sorted by :data:`SERIES_KEYS`: those keys, the columns of
        ``judge_frame`` (``status``, ``direction``, ``effect``, ``p_value``,
        ``baseline_median``, ``latest_median``, ``n_baseline``, ``n_latest``,
        ``commit_before``/``_after``, ``run_id_before``/``_after`` ...), ``time_before`` /
        ``time_after`` (start times of the last baseline and the first latest run) and
        ``newest_run_id`` / ``newest_time`` (the series' newest run).
    """
    return judge_series(series_frame(frame, metrics), **options)


def judge_series(long: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """:func:`regress_frame` over a long table of :func:`series_frame` rows (perhaps cut
    to each series' newest accepted step)."""
    from runners.analysis.regress import judge_frame

    keys = list(SERIES_KEYS)
    judged = judge_frame(long, "value", keys, "start_time", direction_col="direction",
                         commit_col="commit", run_id_col="run_id", **options)
    judged = judged.rename(columns={"order_before": "time_before", "order_after": "time_after"})
    newest = (long.groupby(keys, sort=True)
              .agg(newest_run_id=("run_id", "last"), newest_time=("start_time", "last"))
              .reset_index())
    return judged.merge(newest, on=keys, how="left", validate="one_to_one")


def verdict_tags(result: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``{newest run id: {tag: value}}`` for the verdicts of :func:`regress_frame`.

    ``regress.<metric>`` is ``regression``, ``improvement``, ``ok`` or ``not enough data``;
    ``regress.<metric>.change_pct`` the relative change of the medians in percent (two
    decimals), when it was measured.
    """
    tags: dict[str, dict[str, str]] = {}
    for row in result.itertuples(index=False):
        run = tags.setdefault(str(row.newest_run_id), {})
        run[f"regress.{row.metric}"] = VERDICT_TAG.get(str(row.status), str(row.status))
        effect = float(row.effect)
        if math.isfinite(effect):
            run[f"regress.{row.metric}.change_pct"] = f"{100 * effect:.2f}"
    return tags


def _short_time(value: Any, full: bool) -> str:
    import pandas as pd

    if value is None or value is pd.NaT:
        return ""
    stamp = pd.Timestamp(value)
    return stamp.isoformat() if full else stamp.strftime("%Y-%m-%d %H:%M")


def regress_report(result: pd.DataFrame, full: bool = False,
                   with_status: bool = False) -> pd.DataFrame:
    """The printable table of :func:`regress_frame` rows.

    Parameters
    ----------
    result : pandas.DataFrame
        Rows of :func:`regress_frame`.
    full : bool
        Full run ids, commits and ISO times (for CSV), else short ones.
    with_status : bool
        Add the ``status`` column (when more than regressions are listed).

    Returns
    -------
    pandas.DataFrame
        ``experiment``, ``metric``, ``machine``, ``fs``, ``config``, [``status``],
        ``change`` (``+30.0%``), ``baseline``/``latest`` (medians), ``points``
        (``baseline+latest``), ``p``, ``from``/``to`` (time and commit of the last
        baseline and the first latest run: the change appeared in between), ``runs``
        (their run ids) and ``newest_run``.
    """
    import pandas as pd

    commit_n, run_n, hash_n = (None, None, None) if full else (7, 12, 8)

    def cut(value: Any, n: int | None) -> str:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else str(value)
        return text[:n] if n else text

    rows = []
    for r in result.itertuples(index=False):
        effect = float(r.effect)
        row = {"experiment": r.experiment, "metric": r.metric, "machine": r.machine,
               "fs": r.fs, "config": cut(r.config_hash, hash_n)}
        if with_status:
            row["status"] = r.status
        judged = r.run_id_before is not None and not (
            isinstance(r.run_id_before, float) and math.isnan(r.run_id_before))
        row.update({
            "change": f"{effect:+.1%}" if math.isfinite(effect) else "",
            "baseline": float(r.baseline_median), "latest": float(r.latest_median),
            "points": f"{int(r.n_baseline)}+{int(r.n_latest)}" if judged else str(r.n_points),
            "p": float(r.p_value),
            "from": " ".join(w for w in (_short_time(r.time_before, full) if judged else "",
                                         cut(r.commit_before, commit_n) if judged else "")
                             if w),
            "to": " ".join(w for w in (_short_time(r.time_after, full) if judged else "",
                                       cut(r.commit_after, commit_n) if judged else "") if w),
            "runs": (f"{cut(r.run_id_before, run_n)}..{cut(r.run_id_after, run_n)}"
                     if judged else ""),
            "newest_run": cut(r.newest_run_id, run_n),
        })
        rows.append(row)
    columns = ["experiment", "metric", "machine", "fs", "config",
               *(["status"] if with_status else []), "change", "baseline", "latest", "points",
               "p", "from", "to", "runs", "newest_run"]
    return pd.DataFrame(rows, columns=columns)
