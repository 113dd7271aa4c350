"""Plots of ``bench report``: one PNG per series and the multi-page ``summary.pdf``.

Matplotlib with the Agg backend, imported inside the functions.  A series is drawn as its
value against the start time; FAILED and KILLED runs are gaps in the line with a red x at
the bottom and their ``failure.kind``; when the commit varies, each new commit's short hash
is written at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.report.page import LATEST, MISSING, SERIES_KEYS

if TYPE_CHECKING:
    import pandas as pd

#: Size of a series' PNG: inches and dots per inch (640 x 360 pixels).
PNG_SIZE = (6.4, 3.6)
PNG_DPI = 100
#: Plots per PDF page (rows x columns) and table rows per PDF page.
PDF_GRID = (3, 2)
PDF_ROWS = 20
A4_LANDSCAPE = (11.69, 8.27)
A4_PORTRAIT = (8.27, 11.69)
MAX_COMMIT_LABELS = 20


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_series(ax: Any, points: pd.DataFrame, verdict: Mapping[str, Any] | None = None,
                title: str = "") -> None:
    """Draw one series on a matplotlib Axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    points : pandas.DataFrame
        The rows of one series from :func:`runners.report.page.series_table` (``start_time``,
        ``value`` NaN for gaps, ``failure``, ``commit``, ``metric``).
    verdict : mapping, optional
        Its row of :func:`runners.report.page.verdicts`: the baseline median is drawn, and
        the latest window in red for a regression.
    title : str
        Axes title.
    """
    import matplotlib.dates as mdates
    import numpy as np

    pts = points.sort_values("start_time", kind="stable")
    times = pts["start_time"].dt.tz_convert(None).to_numpy()
    values = pts["value"].to_numpy(dtype=np.float64)
    ok = ~np.isnan(values)
    ax.plot(times, values, "-", color="#0969da", lw=1.2)       # NaN gaps break the line
    ax.plot(times[ok], values[ok], "o", color="#0969da", ms=3.5, label="finished run")
    status = "" if verdict is None else str(verdict.get("status", ""))
    if verdict is not None:
        base = float(verdict.get("baseline", np.nan))
        if np.isfinite(base):
            label = "baseline median" + ("" if verdict.get("step_detected")
                                         else f" (all but last {LATEST})")
            ax.axhline(base, color="#6e7781", ls="--", lw=1, label=label)
        after = verdict.get("order_after")
        if status == "regression" and after is not None:
            late = ok & (pts["start_time"] >= _utc(after)).to_numpy()
            ax.plot(times[late], values[late], "o", color="#cf222e", ms=5,
                    label="regression (latest)")
    gaps = ~ok                                  # FAILED and KILLED runs
    if gaps.any():
        spot = ax.get_xaxis_transform()     # x in data, y in axes fraction
        for t in times[gaps]:
            ax.axvline(t, color="#cf222e", alpha=0.25, lw=0.8)
        ax.scatter(times[gaps], np.full(int(gaps.sum()), 0.04), transform=spot, marker="x",
                   color="#cf222e", s=40, zorder=5, label="failed run", clip_on=False)
        for t, kind in zip(times[gaps], pts["failure"].to_numpy()[gaps], strict=True):
            ax.text(t, 0.09, str(kind), transform=spot, rotation=90, ha="center",
                    va="bottom", fontsize=7, color="#cf222e")
    commits = pts["commit"].astype(str).to_numpy()
    new = np.r_[False, commits[1:] != commits[:-1]] & (commits != "")
    if len(set(commits) - {""}) > 1:
        spot = ax.get_xaxis_transform()
        marks = np.flatnonzero(new)[-MAX_COMMIT_LABELS:]
        for i in [int(np.flatnonzero(commits != "")[0]), *marks]:
            ax.axvline(times[i], color="#8250df", alpha=0.35, lw=0.8, ls=":")
            ax.text(times[i], 0.97, commits[i][:7], transform=spot, rotation=90, ha="right",
                    va="top", fontsize=6.5, color="#8250df", family="monospace")
    if ok.any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        span = (hi - lo) or abs(hi) * 0.1 or 1.0
        ax.set_ylim(lo - span * (0.45 if gaps.any() else 0.15), hi + span * 0.45)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("start time (UTC)", fontsize=8)
    ax.set_ylabel(str(pts["metric"].iloc[0]) if len(pts) else "", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4,
              frameon=False, handlelength=1.5, columnspacing=1.2)    # below: the data stay clear
    colour = "#cf222e" if status == "regression" else "black"
    ax.set_title(title, fontsize=8.5, color=colour)


def _utc(value: Any) -> Any:
    """A time as a UTC pandas Timestamp (naive times are taken as UTC)."""
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def series_title(row: Mapping[str, Any], machine: bool = False) -> str:
    """``experiment · metric (fs, config) — verdict`` for a verdicts row."""
    where = f"{row['machine']} · " if machine else ""
    config = str(row["config_hash"])[:10]
    return (f"{where}{row['experiment']} · {row['metric']}\nfs {row['fs']}, config {config}"
            f" — {row['status']}")


def _points_of(series: pd.DataFrame, row: Mapping[str, Any]) -> pd.DataFrame:
    mask = True
    for key in SERIES_KEYS:
        mask = mask & (series[key] == row[key])
    return series[mask]


def write_pngs(series: pd.DataFrame, table: pd.DataFrame, names: Sequence[str],
               out_dir: Path) -> list[Path]:
    """Write ``out_dir/<name>.png`` for each row of the verdicts table; return the files."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = {key: part for key, part in series.groupby(list(SERIES_KEYS), sort=False)}
    made = []
    for row, name in zip(table.to_dict("records"), names, strict=True):
        fig, ax = plt.subplots(figsize=PNG_SIZE)
        points = groups[tuple(row[k] for k in SERIES_KEYS)]
        draw_series(ax, points, row, series_title(row, machine=True))
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=PNG_DPI)
        plt.close(fig)
        made.append(path)
    return made


def _cell(value: Any, pct: bool = False) -> str:
    import math

    if not isinstance(value, int | float) or math.isnan(value):
        return MISSING
    return f"{value:+.1%}" if pct else f"{value:.4g}"


def _table_page(pdf: Any, rows: pd.DataFrame, heading: Sequence[str]) -> None:
    """One A4 landscape page: the heading lines and a table of verdict rows."""
    plt = _pyplot()
    fig = plt.figure(figsize=A4_LANDSCAPE)
    for i, line in enumerate(heading):
        fig.text(0.04, 0.95 - i * 0.035, line, fontsize=16 if i == 0 else 10,
                 weight="bold" if i == 0 else "normal", va="top")
    cols = ["machine", "experiment", "metric", "fs", "config", "newest", "baseline",
            "change", "verdict", "points/failed", "last run"]
    cells = [[str(r["machine"]), str(r["experiment"]), str(r["metric"]), str(r["fs"]),
              str(r["config_hash"])[:10], _cell(r["newest"]), _cell(r["baseline"]),
              _cell(r["change"], pct=True), str(r["status"]),
              f"{int(r['n_points'])}/{int(r['n_failed'])}",
              "ok" if r["last_status"] == "FINISHED"
              else f"{r['last_status']}: {r['last_failure'] or '?'}"]
             for r in rows.to_dict("records")]
    top = 0.95 - len(heading) * 0.035 - 0.02
    ax = fig.add_axes((0.04, 0.04, 0.92, top - 0.04))
    ax.axis("off")
    if cells:
        tab = ax.table(cellText=cells, colLabels=cols, loc="upper left", cellLoc="left")
        tab.auto_set_font_size(False)
        tab.set_fontsize(9)
        tab.auto_set_column_width(list(range(len(cols))))
        tab.scale(1.0, 1.5)
        for i, status in enumerate(rows["status"], start=1):
            if status == "regression":
                for j in range(len(cols)):
                    tab[i, j].set_facecolor("#ffebe9")
                    tab[i, j].get_text().set_color("#a40e26")
        for j in range(len(cols)):
            tab[0, j].set_facecolor("#f6f8fa")
            tab[0, j].get_text().set_weight("bold")
    pdf.savefig(fig)
    plt.close(fig)


def write_pdf(path: Path, series: pd.DataFrame, table: pd.DataFrame,
              heading: Sequence[str]) -> int:
    """Write the summary PDF: the table pages, then the plots, several per page.

    Parameters
    ----------
    path : Path
        The PDF file.
    series, table : pandas.DataFrame
        The series of :func:`~runners.report.page.series_table` and their verdicts.
    heading : sequence of str
        Lines at the top of the first page (title, time, commit...).

    Returns
    -------
    int
        Number of pages.
    """
    plt = _pyplot()
    from matplotlib.backends.backend_pdf import PdfPages

    groups = {key: part for key, part in series.groupby(list(SERIES_KEYS), sort=False)}
    per_page = PDF_GRID[0] * PDF_GRID[1]
    pages = 0
    with PdfPages(path) as pdf:
        for start in range(0, max(len(table), 1), PDF_ROWS):
            lines = heading if start == 0 else [f"{heading[0]} (table, continued)"]
            _table_page(pdf, table.iloc[start:start + PDF_ROWS], lines)
            pages += 1
        for machine, rows in table.groupby("machine", sort=True):
            records = rows.to_dict("records")
            for start in range(0, len(records), per_page):
                fig, axes = plt.subplots(*PDF_GRID, figsize=A4_PORTRAIT, squeeze=False)
                fig.suptitle(f"Machine: {machine}", fontsize=13, weight="bold")
                flat = axes.ravel()
                for ax, row in zip(flat, records[start:start + per_page], strict=False):
                    points = groups[tuple(row[k] for k in SERIES_KEYS)]
                    draw_series(ax, points, row, series_title(row))
                for ax in flat[len(records[start:start + per_page]):]:
                    ax.axis("off")
                fig.tight_layout(rect=(0, 0, 1, 0.97))
                pdf.savefig(fig)
                plt.close(fig)
                pages += 1
        info = pdf.infodict()
        info["Title"] = heading[0] if heading else "Benchmark results"
        info["Creator"] = "bench report"
    return pages
