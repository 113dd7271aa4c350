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

import html
import re
from collections.abc import Sequence
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
#: Statistics that keep the better direction of their base metric (spreads: lower).
#: Marks the pages this module wrote: ``bench report`` only replaces a folder holding one.
GENERATOR = "bench report"
MISSING = "-"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1400px;padding:0 1.5rem 3rem;color:#1b1f23;background:#fff;line-height:1.4}
header{border-bottom:2px solid #d0d7de;margin-bottom:1rem}
h1{margin:1rem 0 .3rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;margin:.2rem 0}code{font-size:.95em}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.regression td{background:#ffebe9}tr.regression td.verdict{color:#a40e26;font-weight:bold}
tr.improvement td.verdict{color:#116329;font-weight:bold}
.failed{color:#a40e26}.summary li{margin:.15rem 0}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem}
figure{margin:0;border:1px solid #d0d7de;padding:.4rem}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:#57606a;margin-top:.3rem}
"""


def default_metrics(frame: pd.DataFrame) -> list[str]:
    """Every ``<name>.median`` metric of a runs table (names without ``metric.``), sorted."""
    return sorted(c.removeprefix("metric.") for c in frame.columns
                  if c.startswith("metric.") and c.endswith(".median"))


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
        A runs table of :meth:`runners.tracking.Tracker.runs_table`.
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


def _row(row: Any, plot: str) -> str:
    """One ``<tr>`` of the latest-vs-baseline table."""
    e = html.escape
    cls = {"regression": "regression", "improvement": "improvement"}.get(row.status, "")
    last = "ok" if row.last_status == "FINISHED" else \
        f'<span class="failed">{e(row.last_status)}: {e(row.last_failure or "?")}</span>'
    commit = f" <code>{e(str(row.newest_commit)[:8])}</code>" if row.newest_commit else ""
    window = "before the step" if row.step_detected else f"all but the last {LATEST}"
    cells = [
        f'<a href="#{e(plot)}">{e(row.experiment)}</a>', e(row.metric), e(row.fs),
        f"<code>{e(str(row.config_hash)[:10])}</code>",
        f'<td class="num">{_num(row.newest)}', f"{e(_time(row.newest_time))}{commit}",
        f'<td class="num" title="{e(window)}">{_num(row.baseline)}',
        f'<td class="num">{_num(row.change, pct=True)}',
        f'<td class="verdict" title="{e(str(row.reason))}">{e(row.status)}',
        f'<td class="num">{int(row.n_points)} / {int(row.n_failed)}', last,
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells)
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


_HEAD = ("<tr><th>experiment</th><th>metric</th><th>fs</th><th>config</th><th>newest</th>"
         "<th>newest run</th><th>baseline median</th><th>change vs baseline</th><th>verdict</th>"
         "<th>points / failed</th><th>last run</th></tr>")


def _figures(rows: pd.DataFrame, width: int, height: int) -> list[str]:
    """The ``<figure>`` of each (experiment, metric) of one machine's verdict rows."""
    e = html.escape
    out = ['<h3>History</h3><div class="plots">']
    for stem, group in rows.groupby("plot", sort=False):
        first = group.iloc[0]
        drawn = int(group["drawn"].sum())
        n_bad = int((group["status"] == "regression").sum())
        bad = f", {n_bad} regression(s)" if n_bad else ""
        alt = (f"{first.metric} of {first.experiment} on {first.machine} over time: "
               f"{drawn} series drawn{bad}")
        left = len(group) - drawn
        note = (f" · {left} more series as grey dots only (fewer points; in the table and "
                '<a href="data/verdicts.csv">data/verdicts.csv</a>)' if left else "")
        out.append(f'<figure id="{e(str(stem))}"><img src="plots/{e(str(stem))}.png" '
                   f'alt="{e(alt)}" width="{width}" height="{height}">'
                   f"<figcaption>{e(first.experiment)} · {e(first.metric)} · "
                   f"{drawn} of {len(group)} series{e(bad)}{note}</figcaption></figure>")
    out.append("</div>")
    return out


def render_html(table: pd.DataFrame, plots: Sequence[str], failed: pd.DataFrame, *,
                title: str, updated: Any, commit: str, branch: str | None,
                n_runs: int, plot_size: tuple[int, int] = (640, 360),
                drawn: Sequence[bool] | None = None, max_rows: int = MAX_TABLE_ROWS) -> str:
    """The results page: one section per machine with its table and its figures.

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

    Returns
    -------
    str
        A complete HTML document.
    """
    e = html.escape
    width, height = plot_size
    table = table.assign(plot=list(plots),
                         drawn=[True] * len(table) if drawn is None else list(drawn))
    machines = sorted(set(table["machine"]) | set(failed["machine"]))
    bad = table[table["status"] == "regression"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f'<meta name="generator" content="{GENERATOR}">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<header><h1>{e(title)}</h1>",
           f'<p class="meta">last updated {e(_time(updated))} UTC</p>',
           f'<p class="meta">branch <code>{e(branch or "unknown")}</code> · commit '
           f'<code title="{e(commit)}">{e(commit[:12] or "unknown")}</code> (newest run)</p>',
           f'<p class="meta">{n_runs} runs, {len(table)} series, {len(failed)} failed runs, '
           f"{len(bad)} regressions</p></header>",
           '<nav><h2>Summary</h2><ul class="summary">']
    for m in machines:
        n_bad = int((bad["machine"] == m).sum())
        note = f' — <span class="failed">{n_bad} regression(s)</span>' if n_bad else ""
        out.append(f'<li><a href="#{e(_machine_id(m))}">{e(m)}</a>{note}</li>')
    out.append("</ul>")
    if len(bad):
        out.append("<p>Regressions:</p><ul>")
        for r in bad.head(max_rows).itertuples(index=False):
            out.append(f'<li><a href="#{e(r.plot)}">{e(r.machine)} · {e(r.experiment)} · '
                       f"{e(r.metric)} · {e(r.fs)} · {e(str(r.config_hash)[:7])}</a>: "
                       f"{_num(r.effect, pct=True)} ({e(str(r.reason))})</li>")
        if len(bad) > max_rows:
            out.append(f"<li>... {len(bad) - max_rows} more in "
                       '<a href="data/verdicts.csv">data/verdicts.csv</a></li>')
        out.append("</ul>")
    out.append("</nav>")
    for m in machines:
        rows = table[table["machine"] == m]
        out.append(f'<section id="{e(_machine_id(m))}"><h2>Machine: {e(m)}</h2>')
        if len(rows):
            out.append("<h3>Latest vs baseline</h3>")
            if len(rows) > max_rows:
                out.append(f'<p class="meta">the first {max_rows} of {len(rows)} series '
                           "(regressions first, then most points); all of them are in "
                           '<a href="data/verdicts.csv">data/verdicts.csv</a></p>')
            out.append(f"<table>{_HEAD}")
            shown = worst_first(rows).head(max_rows)
            out += [_row(r, r.plot) for r in shown.itertuples(index=False)]
            out.append("</table>")
            out += _figures(rows, width, height)
        gone = failed[failed["machine"] == m].head(10)
        if len(gone):
            out.append("<h3>Failed runs (newest first)</h3><table><tr><th>start</th>"
                       "<th>experiment</th><th>fs</th><th>status</th><th>kind</th>"
                       "<th>stage</th><th>message</th><th>run</th></tr>")
            for f in gone.itertuples(index=False):
                out.append(f"<tr><td>{e(_time(f.start_time))}</td><td>{e(f.experiment)}</td>"
                           f"<td>{e(f.fs)}</td><td>{e(f.status)}</td>"
                           f'<td class="failed">{e(f.kind or "?")}</td><td>{e(f.stage)}</td>'
                           f"<td>{e(f.message[:200])}</td><td><code>{e(f.run_id[:12])}</code>"
                           "</td></tr>")
            out.append("</table>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
