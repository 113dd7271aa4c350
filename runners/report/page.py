"""The results page of ``bench report``: series, verdicts and the HTML (pure functions).

A *series* is one metric of one (machine, experiment, fs, ``config.hash``), ordered by
start time.  Its FINISHED runs are the points; its FAILED and KILLED runs are gaps that
carry their ``failure.kind``.  :func:`verdicts` judges each series with
:func:`runners.analysis.regress.judge_frame`; :func:`render_html` turns the verdicts
into one self-contained page (inline CSS, no script, no external URL) with one figure
``plots/<name>.png`` per (machine, experiment, metric), a line per series (at most
:data:`runners.report.pdf.MAX_LINES`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.analysis.series import direction_column

if TYPE_CHECKING:
    import pandas as pd

#: Columns that identify a series, in the order of the tables.
SERIES_KEYS = ("machine", "experiment", "metric", "fs", "config_hash")
#: Columns that identify a figure: one per group, with a line per series.
FIGURE_KEYS = ("machine", "experiment", "metric")
#: Rows of the latest-vs-baseline table of a machine on the page (all in verdicts.csv).
MAX_TABLE_ROWS = 200
#: Series keys read from run tags.
SERIES_TAGS = {"machine": "tag.machine", "fs": "tag.fs", "config_hash": "tag.config.hash"}
#: Run statuses drawn as gaps (a run that did not measure).
GAP_STATUSES = ("FAILED", "KILLED")
#: Latest window of ``judge`` without a step: the baseline is all but these last points.
LATEST = 3
#: Marks the pages this module wrote: ``bench report`` only replaces a folder holding one.
GENERATOR = "bench report"
MISSING = "-"


def resolve_metrics(frame: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Check metric names (``metric.`` prefix optional) against a runs table.

    Raises
    ------
    ValueError
        One line naming the unknown metrics and some valid ones.
    """
    have = sorted(c.removeprefix("metric.") for c in frame.columns if c.startswith("metric."))
    wanted = [n.strip().removeprefix("metric.") for n in names if n.strip()]
    unknown = [n for n in wanted if n not in have]
    if unknown or not wanted:
        listing = ", ".join(have[:15]) + (", ..." if len(have) > 15 else "") or "none"
        what = ", ".join(map(repr, unknown)) or "no name"
        raise ValueError(f"no metric {what} in these runs; metrics: {listing}")
    return list(dict.fromkeys(wanted))


def series_table(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The long table of the series: one row per run and metric.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table of :meth:`runners.tracking.query.StoreReader.runs_table`.
    metrics : sequence of str
        Metric names (without ``metric.``), each a column of the frame.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SERIES_KEYS` (a missing tag is ``"-"``), ``run_id``, ``start_time``,
        ``status``, ``commit`` (``""`` if unknown), ``failure`` (``failure.kind`` of a gap,
        else its status in lower case; ``""`` for FINISHED runs), ``direction`` (the
        newest run's, default ``"lower"``) and ``value``: finite for FINISHED runs, NaN
        for the gaps (FAILED and KILLED runs, listed in every series of their key).
        Series without a finite value are left out; rows are sorted by start time.
    """
    import numpy as np
    import pandas as pd

    def tag(column: str | None, default: str) -> pd.Series:
        if column is None or column not in frame.columns:
            return pd.Series(default, index=frame.index, dtype=object)
        return frame[column].astype(object).where(frame[column].notna(), default)

    keys = list(SERIES_KEYS)
    columns = [*keys, "run_id", "start_time", "status", "commit", "failure", "direction",
               "value"]
    gap = frame["status"].isin(GAP_STATUSES)
    kind = tag("tag.failure.kind", "").astype(str)
    parts = []
    for metric in metrics:
        direction = tag(direction_column(frame, metric), "lower")
        value = frame[f"metric.{metric}"].astype("float64").replace([np.inf, -np.inf], np.nan)
        part = pd.DataFrame({
            "experiment": frame["experiment"].astype(str), "metric": metric,
            **{key: tag(col, MISSING).astype(str) for key, col in SERIES_TAGS.items()},
            "run_id": frame["run_id"], "start_time": frame["start_time"],
            "status": frame["status"], "commit": tag("tag.git.commit", "").astype(str),
            "failure": kind.where(kind != "", frame["status"].str.lower()).where(gap, ""),
            "direction": direction.where(direction.isin(["lower", "higher"]), "lower"),
            "value": value.where(~gap),
        })
        parts.append(part[gap | ((frame["status"] == "FINISHED") & value.notna())])
    if not parts:
        return pd.DataFrame(columns=columns)
    long = pd.concat(parts, ignore_index=True).sort_values("start_time", kind="stable")
    measured = long.groupby(keys)["value"].transform("count") > 0
    long = long[measured].copy()
    finished = long["direction"].where(long["value"].notna())
    long["direction"] = finished.groupby([long[k] for k in keys]).transform("last")
    return long[columns].reset_index(drop=True)


def verdicts(series: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """Judge every series and add the newest value, the baseline and the change.

    Parameters
    ----------
    series : pandas.DataFrame
        The table of :func:`series_table`.
    **options
        Keyword arguments of :func:`runners.analysis.regress.judge` (default
        ``latest=LATEST``: without a detected step the baseline is all but the last 3).

    Returns
    -------
    pandas.DataFrame
        One row per series sorted by :data:`SERIES_KEYS`: those keys, the columns of
        ``judge_frame`` (``status``, ``direction``, ``effect``, ``p_value``,
        ``baseline_median``, ``latest_median``, ``step_detected``, ``reason``,
        ``commit_before``/``_after``, ``order_before``/``_after`` start times ...), then
        ``newest`` (value of the newest FINISHED run), ``newest_time``, ``newest_commit``,
        ``newest_run_id``, ``baseline`` (the verdict's baseline median, else the median
        of all but the last 3 points), ``change`` (``(newest - baseline) / |baseline|``),
        ``n_failed`` (gaps), ``last_status`` and ``last_failure`` (the newest run of the
        series, finished or not).
    """
    import numpy as np

    from runners.analysis.regress import judge_frame

    keys = list(SERIES_KEYS)
    points = series[series["value"].notna()]
    options = {"latest": LATEST, **options}
    judged = judge_frame(points, "value", keys, "start_time", direction_col="direction",
                         commit_col="commit", run_id_col="run_id", **options)
    latest = int(options["latest"])

    def fallback(values: pd.Series) -> float:
        head = values.to_numpy(dtype=np.float64)[:-latest]
        return float(np.median(head)) if head.size else float("nan")

    grouped = points.groupby(keys, sort=True)
    extra = grouped.agg(newest=("value", "last"), newest_time=("start_time", "last"),
                        newest_commit=("commit", "last"), newest_run_id=("run_id", "last"))
    extra["fallback"] = grouped["value"].apply(fallback)
    every = series.groupby(keys, sort=True)
    extra["n_failed"] = every["value"].agg(lambda v: int(v.isna().sum()))
    extra["last_status"] = every["status"].last()
    extra["last_failure"] = every["failure"].last()
    out = judged.merge(extra.reset_index(), on=keys, how="left", validate="one_to_one")
    out["baseline"] = out["baseline_median"].astype("float64").fillna(out["fallback"])
    base = out["baseline"].abs().replace(0.0, np.nan)
    out["change"] = (out["newest"] - out["baseline"]) / base
    return out.drop(columns="fallback")


def worst_first(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a verdicts table: regressions first, then most points, then newest (stable)."""
    order = table.assign(_ok=table["status"] != "regression")
    return order.sort_values(["_ok", "n_points", "newest_time"], ascending=[True, False, False],
                             kind="stable").drop(columns="_ok")


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """The FAILED and KILLED runs of a runs table, newest first.

    Returns
    -------
    pandas.DataFrame
        Columns ``machine``, ``experiment``, ``fs``, ``start_time``, ``status``, ``kind``,
        ``stage``, ``message`` (tags ``failure.*``; ``""`` when missing) and ``run_id``.
    """
    import pandas as pd

    gaps = frame[frame["status"].isin(GAP_STATUSES)]

    def tag(name: str) -> pd.Series:
        col = f"tag.{name}"
        if col not in gaps.columns:
            return pd.Series("", index=gaps.index, dtype=object)
        return gaps[col].astype(object).where(gaps[col].notna(), "").astype(str)

    out = pd.DataFrame({"machine": tag("machine").replace("", MISSING),
                        "experiment": gaps["experiment"].astype(str),
                        "fs": tag("fs").replace("", MISSING), "start_time": gaps["start_time"],
                        "status": gaps["status"], "kind": tag("failure.kind"),
                        "stage": tag("failure.stage"), "message": tag("failure.message"),
                        "run_id": gaps["run_id"]})
    return out.iloc[::-1].reset_index(drop=True)


def newest_commit(frame: pd.DataFrame) -> str:
    """The ``git.commit`` tag of the newest run that has one ('' if none)."""
    if "tag.git.commit" not in frame.columns:
        return ""
    commits = frame.sort_values("start_time", kind="stable")["tag.git.commit"].dropna()
    commits = commits[commits.astype(str) != ""]
    return str(commits.iloc[-1]) if len(commits) else ""


def _time(value: Any) -> str:
    import pandas as pd

    return MISSING if value is None or pd.isna(value) else \
        pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _num(value: Any, pct: bool = False) -> str:
    import math

    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return MISSING
    return f"{value:+.1%}" if pct else f"{value:.4g}"


def _machine_id(machine: str) -> str:
    return "m-" + re.sub(r"[^A-Za-z0-9_-]+", "_", machine)


def _row(row: Any) -> dict[str, Any]:
    """The cells of one row of the latest-vs-baseline table."""
    return {
        "cls": {"regression": "regression", "improvement": "improvement"}.get(row.status, ""),
        "plot": row.plot, "experiment": row.experiment, "metric": row.metric, "fs": row.fs,
        "config": str(row.config_hash)[:10], "newest": _num(row.newest),
        "newest_time": _time(row.newest_time),
        "commit": str(row.newest_commit)[:8] if row.newest_commit else "",
        "window": "before the step" if row.step_detected else f"all but the last {LATEST}",
        "baseline": _num(row.baseline), "change": _num(row.change, pct=True),
        "reason": str(row.reason), "status": row.status, "points": int(row.n_points),
        "failed": int(row.n_failed), "last_ok": row.last_status == "FINISHED",
        "last_status": row.last_status, "last_failure": row.last_failure}


def _figures(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The figure of each (experiment, metric) of one machine's verdict rows."""
    out = []
    for stem, group in rows.groupby("plot", sort=False):
        first = group.iloc[0]
        drawn = int(group["drawn"].sum())
        n_bad = int((group["status"] == "regression").sum())
        bad = f", {n_bad} regression(s)" if n_bad else ""
        out.append({"stem": str(stem), "experiment": first.experiment, "metric": first.metric,
                    "alt": f"{first.metric} of {first.experiment} on {first.machine} over "
                           f"time: {drawn} series drawn{bad}",
                    "drawn": drawn, "total": len(group), "bad": bad,
                    "left": len(group) - drawn})
    return out


def render_html(table: pd.DataFrame, plots: Sequence[str], failed: pd.DataFrame, *,
                title: str, updated: Any, commit: str, branch: str | None,
                n_runs: int, plot_size: tuple[int, int] = (640, 360),
                drawn: Sequence[bool] | None = None, max_rows: int = MAX_TABLE_ROWS,
                scaling: Sequence[dict[str, Any]] = ()) -> str:
    """The results page (``templates/index.html.j2``): one section per machine with its
    table and its figures; Jinja2 escapes every value.

    Parameters
    ----------
    table : pandas.DataFrame
        The verdicts of :func:`verdicts`.
    plots : sequence of str
        The figure stem of each row (``plots/<stem>.png``, see :func:`plot_names`).
    failed : pandas.DataFrame
        The failed runs of :func:`failures` (the newest 10 per machine are listed).
    title, updated, commit, branch, n_runs
        Page title, when the report was made (UTC), the newest runs' commit and the
        checkout's branch (``""``/None when unknown), runs read from the store.
    plot_size : tuple of int
        Width and height of the PNGs in pixels.
    drawn : sequence of bool, optional
        Whether each row is a line of its figure (default: all; see
        :func:`runners.report.pdf.drawn_series`).
    max_rows : int
        Rows of a machine's table (regressions first); the rest is in data/verdicts.csv.
    scaling : sequence of dict
        The scaling studies of :func:`runners.report.scaling.studies` (a "Scaling"
        section when there are any).

    Returns
    -------
    str
        A complete HTML document.
    """
    table = table.assign(plot=list(plots),
                         drawn=[True] * len(table) if drawn is None else list(drawn))
    bad = table[table["status"] == "regression"]
    machines = []
    for m in sorted(set(table["machine"]) | set(failed["machine"])):
        rows = table[table["machine"] == m]
        gone = failed[failed["machine"] == m].head(10)
        machines.append({
            "name": m, "id": _machine_id(m), "regressions": int((bad["machine"] == m).sum()),
            "n_series": len(rows),
            "rows": [_row(r) for r in worst_first(rows).head(max_rows).itertuples(index=False)],
            "figures": _figures(rows) if len(rows) else [],
            "failed": [{**f._asdict(), "start": _time(f.start_time)}
                       for f in gone.itertuples(index=False)]})
    regressions = [{"plot": r.plot, "machine": r.machine, "experiment": r.experiment,
                    "metric": r.metric, "fs": r.fs, "config": str(r.config_hash)[:7],
                    "effect": _num(r.effect, pct=True), "reason": str(r.reason)}
                   for r in bad.itertuples(index=False)]
    return _template().render(
        generator=GENERATOR, title=title, updated=_time(updated), branch=branch,
        commit=commit, n_runs=n_runs, n_series=len(table), n_failed=len(failed),
        machines=machines, regressions=regressions, max_rows=max_rows, scaling=scaling,
        width=plot_size[0], height=plot_size[1]) + "\n"


def _template() -> Any:
    """The page's Jinja2 template, with HTML autoescape."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=False)
    return env.get_template("index.html.j2")
