"""Figures of ``bench report``: one PNG per (machine, experiment, metric) and ``summary.pdf``.

A figure draws up to :data:`MAX_LINES` series of one metric against the start time, a
colour per series (a single point is a marker).  Failed and killed runs of the machine
and experiment are a red x at the bottom with their ``failure.kind``; a regression's
baseline median is dashed and its latest points ringed in red; when the commit varies,
each new commit's short hash is written at the top.  One matplotlib Figure (Agg, no
pyplot) is cleared and reused for every PNG and every PDF page, with a fixed layout; the
PDF embeds the PNGs rather than drawing every figure twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.report.page import FIGURE_KEYS, MISSING, SERIES_KEYS, worst_first

if TYPE_CHECKING:
    import pandas as pd

#: Lines per figure (the other series of the group are only in the tables).
MAX_LINES = 8
#: Size of a figure's PNG: inches and dots per inch (640 x 360 pixels).
PNG_SIZE = (6.4, 3.6)
PNG_DPI = 100
#: Figures per PDF page (rows x columns), table rows per page and the page caps.
PDF_GRID = (4, 2)
PDF_ROWS = 30
PDF_TABLE_PAGES = 5
PDF_FIGURE_PAGES = 40
A4_LANDSCAPE = (11.69, 8.27)
A4_PORTRAIT = (8.27, 11.69)
MAX_COMMIT_LABELS = 20
MAX_GAP_LABELS = 15
#: Series colours (red is kept for failures and regressions).
COLOURS = ("#0969da", "#bf8700", "#1a7f37", "#8250df", "#6e7781", "#e85aad", "#17becf",
           "#953800")
RED = "#cf222e"


def plot_names(table: pd.DataFrame) -> list[str]:
    """The figure's file stem of each row of a verdicts table: one per :data:`FIGURE_KEYS`.

    Rows of one (machine, experiment, metric) share a stem (``machine--experiment--metric``);
    stems of different groups differ, also case-insensitively.
    """
    stems: dict[tuple[str, ...], str] = {}
    seen: set[str] = set()
    names: list[str] = []
    for key in table[list(FIGURE_KEYS)].astype(str).itertuples(index=False, name=None):
        name = stems.get(key)
        if name is None:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "--".join(key))[:150]
            name, k = stem, 1
            while name.lower() in seen:
                k += 1
                name = f"{stem}-{k}"
            seen.add(name.lower())
            stems[key] = name
        names.append(name)
    return names


def drawn_series(table: pd.DataFrame, limit: int = MAX_LINES) -> list[bool]:
    """Whether each row of a verdicts table is a line of its figure.

    At most ``limit`` series per (machine, experiment, metric): regressions first, then
    those with the most points, then the newest (:func:`runners.report.page.worst_first`).
    """
    rank = worst_first(table).groupby(list(FIGURE_KEYS), sort=False).cumcount()
    return (rank.reindex(table.index) < limit).tolist()


def _naive(times: pd.Series) -> Any:
    return times.dt.tz_convert(None).to_numpy()


def draw_group(ax: Any, parts: Sequence[tuple[pd.DataFrame, dict[str, Any]]],
               gaps: pd.DataFrame | None = None, title: str = "", legend: bool = True,
               others: tuple[pd.DataFrame | None, int] = (None, 0)) -> None:
    """Draw the series of one figure on a matplotlib Axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    parts : sequence of (pandas.DataFrame, dict)
        Per series: its rows of :func:`runners.report.page.series_table` (``start_time``,
        ``value``, ``commit``, ``metric``) and its row of the verdicts.
    gaps : pandas.DataFrame, optional
        Failed runs to mark (``start_time`` and ``kind``), e.g. of :func:`page.failures`.
    title : str
        Axes title (red when a series regressed).
    legend : bool
        Draw the legend right of the axes.
    others : (pandas.DataFrame or None, int)
        The points of the series not drawn as lines and their number: small grey dots.
    """
    import matplotlib.dates as mdates
    import numpy as np

    seen: list[Any] = []
    marked: list[tuple[Any, Any]] = []          # (times, commits) of each series' points
    regressed = False
    rest, n_rest = others
    if rest is not None and len(rest):
        ax.plot(_naive(rest["start_time"]), rest["value"].to_numpy(dtype=np.float64), ".",
                color="#afb8c1", ms=3, label=f"{n_rest} other series", zorder=1)
        seen.append(rest["value"].to_numpy(dtype=np.float64))
    for i, (pts, verdict) in enumerate(parts):
        colour = COLOURS[i % len(COLOURS)]
        times = _naive(pts["start_time"])
        values = pts["value"].to_numpy(dtype=np.float64)
        ok = ~np.isnan(values)
        label = f"{verdict['fs']} · {str(verdict['config_hash'])[:7]}"
        if int(ok.sum()) > 1:
            ax.plot(times, values, "-", color=colour, lw=1.1)      # NaN gaps break the line
        ax.plot(times[ok], values[ok], "o", color=colour, ms=3.2 if ok.sum() > 1 else 5.5,
                label=label + (" (regr.)" if verdict["status"] == "regression" else ""))
        seen.append(values[ok])
        marked.append((times[ok], pts["commit"].astype(str).to_numpy()[ok]))
        if verdict["status"] == "regression":
            base = float(verdict.get("baseline", np.nan))
            if np.isfinite(base):
                ax.axhline(base, color=colour, ls="--", lw=1,
                           label=None if regressed else "baseline median")
            after = verdict.get("order_after")
            if after is not None and not (isinstance(after, float) and np.isnan(after)):
                late = ok & (pts["start_time"] >= _utc(after)).to_numpy()
                ax.plot(times[late], values[late], "o", mfc="none", mec=RED, ms=7, mew=1.3,
                        label=None if regressed else "latest (regressed)")
            regressed = True
    when = _naive(gaps["start_time"]) if gaps is not None and len(gaps) else None
    if gaps is not None and when is not None:
        spot = ax.get_xaxis_transform()     # x in data, y in axes fraction
        _vlines(ax, when, color=RED, alpha=0.25, lw=0.8)
        ax.plot(when, np.full(len(when), 0.04), "x", transform=spot, color=RED, ms=6,
                zorder=5, label="failed run", clip_on=False)
        order = np.argsort(when)
        keep = order[_spaced(when[order], _span(marked, when))][-MAX_GAP_LABELS:]
        for t, kind in zip(when[keep], gaps["kind"].to_numpy()[keep], strict=True):
            ax.text(t, 0.09, str(kind), transform=spot, rotation=90, ha="center",
                    va="bottom", fontsize=6.5, color=RED)
    _commits(ax, marked, _span(marked, when))
    values = np.concatenate(seen) if seen else np.empty(0)
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        span = (hi - lo) or abs(hi) * 0.1 or 1.0
        low = 0.15 if when is None else 0.45
        ax.set_ylim(lo - span * low, hi + span * 0.45)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("start time (UTC)", fontsize=7.5)
    ax.set_ylabel(str(parts[0][0]["metric"].iloc[0]) if parts else "", fontsize=7.5)
    ax.tick_params(labelsize=7)
    ax.xaxis.get_offset_text().set_fontsize(7)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  handlelength=1.2, borderaxespad=0.0)
    ax.set_title(title, fontsize=8.5, color=RED if regressed else "black")


def _span(marked: list[tuple[Any, Any]], more: Any) -> float:
    """The time range (ns) of the points and the gaps: labels closer than 1/45 overlap."""
    import numpy as np

    times = np.concatenate([np.asarray(t, dtype="datetime64[ns]") for t, _ in marked]
                           + [np.asarray(() if more is None else more,
                                         dtype="datetime64[ns]")])
    return float((times.max() - times.min()).astype(np.int64)) if times.size else 0.0


def _vlines(ax: Any, times: Any, **style: Any) -> None:
    """Vertical lines over the axes' height at ``times``: one line broken by NaT between
    them (one path to draw; ``Axes.vlines`` makes a path per line, slow by the thousand)."""
    import numpy as np

    x = np.repeat(np.asarray(times, dtype="datetime64[ns]"), 3)
    x[2::3] = np.datetime64("NaT")
    y = np.tile([0.0, 1.0, np.nan], len(times))
    ax.plot(x, y, transform=ax.get_xaxis_transform(), **style)


def _spaced(times: Any, span: float) -> list[int]:
    """Indices of sorted times at least ``span / 45`` apart (the first one kept)."""
    import numpy as np

    keep: list[int] = []
    ns = np.asarray(times, dtype="datetime64[ns]").astype(np.int64)
    for i, t in enumerate(ns):
        if not keep or t - ns[keep[-1]] >= span / 45:
            keep.append(i)
    return keep


def _commits(ax: Any, marked: list[tuple[Any, Any]], span: float) -> None:
    """Mark the first point of each new commit (when there are several) at the top."""
    import numpy as np

    if not marked:
        return
    times = np.concatenate([np.asarray(t, dtype="datetime64[ns]") for t, _ in marked])
    names = np.concatenate([np.asarray(c, dtype=object) for _, c in marked])
    have = names != ""
    times, names = times[have], names[have].astype(str)
    order = np.lexsort((names, times))            # by time, then commit
    times, names = times[order], names[order]
    if len(set(names)) < 2:
        return
    news = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    _vlines(ax, times[news], color="#8250df", alpha=0.3, lw=0.8, ls=":")
    spaced = news[_spaced(times[news], span)]
    spot = ax.get_xaxis_transform()
    for i in [spaced[0], *spaced[1:][-MAX_COMMIT_LABELS:]]:
        ax.text(times[i], 0.97, names[i][:7], transform=spot, rotation=90, ha="right",
                va="top", fontsize=6.5, color="#8250df", family="monospace")


def _utc(value: Any) -> Any:
    """A time as a UTC pandas Timestamp (naive times are taken as UTC)."""
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _figure_plan(series: pd.DataFrame, table: pd.DataFrame, names: Sequence[str],
                 drawn: Sequence[bool], failed: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per figure, in table order: name, title, machine, drawn series, the others, gaps."""
    import pandas as pd

    keys, fig_keys = list(SERIES_KEYS), list(FIGURE_KEYS)
    rows = table.assign(_name=list(names), _drawn=list(drawn))
    flagged = series.merge(rows[[*keys, "_drawn"]], on=keys, how="left", validate="many_to_one")
    on = flagged["_drawn"].fillna(False).astype(bool)
    lines = dict(iter(flagged[on].groupby(keys, sort=False)))
    rest = flagged[~on & flagged["value"].notna()]
    others = dict(iter(rest.groupby(fig_keys, sort=False)))
    if failed is None:                  # the gaps of the series, one per run
        failed = series[series["value"].isna()].drop_duplicates("run_id").rename(
            columns={"failure": "kind"})
    else:
        failed = failed.assign(kind=failed["kind"].where(failed["kind"] != "",
                                                         failed["status"].str.lower()))
    gaps = dict(iter(failed.groupby(["machine", "experiment"], sort=False)))
    no_gaps = pd.DataFrame(columns=["start_time", "kind"])
    ranked = worst_first(rows)
    plan = []
    for name, group in ranked.groupby("_name", sort=False):
        first = group.iloc[0]
        shown = group[group["_drawn"]].to_dict("records")
        n_bad = int((group["status"] == "regression").sum())
        left = len(group) - len(shown)
        title = (f"{first['machine']} · {first['experiment']} · {first['metric']}\n"
                 f"{len(group)} series" + (f", {left} in grey" if left else "")
                 + (f", {n_bad} regression(s)" if n_bad else ""))
        plan.append({"name": name, "machine": first["machine"], "title": title,
                     "gaps": gaps.get((first["machine"], first["experiment"]), no_gaps),
                     "others": (others.get(tuple(first[k] for k in fig_keys)), left),
                     "parts": [(lines[tuple(r[k] for k in keys)], r) for r in shown]})
    order = {n: i for i, n in enumerate(dict.fromkeys(names))}
    return sorted(plan, key=lambda item: order[item["name"]])


def write_pngs(series: pd.DataFrame, table: pd.DataFrame, names: Sequence[str],
               out_dir: Path, drawn: Sequence[bool] | None = None,
               failed: pd.DataFrame | None = None) -> list[Path]:
    """Write ``out_dir/<name>.png`` per figure (see :func:`plot_names`); return the files.

    ``drawn`` (default :func:`drawn_series`) picks the lines; ``failed`` (default: the
    gaps of the series) are the failed runs marked per machine and experiment.
    """
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = drawn_series(table) if drawn is None else drawn
    fig = Figure(figsize=PNG_SIZE, dpi=PNG_DPI)
    made = []
    for item in _figure_plan(series, table, names, drawn, failed):
        fig.clear()
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.1, right=0.72, bottom=0.14, top=0.87)   # fixed: fast
        draw_group(ax, item["parts"], item["gaps"], item["title"], others=item["others"])
        path = out_dir / f"{item['name']}.png"
        fig.savefig(path, dpi=PNG_DPI)
        made.append(path)
    return made


def _cell(value: Any, pct: bool = False) -> str:
    import math

    if not isinstance(value, int | float) or math.isnan(value):
        return MISSING
    return f"{value:+.1%}" if pct else f"{value:.4g}"


#: Columns of the PDF table: heading and the most characters of a cell.
TABLE_COLUMNS = (("machine", 16), ("experiment", 22), ("metric", 26), ("fs", 10),
                 ("config", 10), ("newest", 9), ("baseline", 9), ("change", 8),
                 ("verdict", 16), ("pts/failed", 10), ("last run", 26))


def _table_page(fig: Any, rows: pd.DataFrame, heading: Sequence[str]) -> None:
    """Draw one A4 landscape page on ``fig``: the heading lines and a table of verdicts.

    The table is a line of monospace text per row (fast to draw), regressions in red.
    """
    fig.clear()
    for i, line in enumerate(heading):
        fig.text(0.04, 0.95 - i * 0.032, line, fontsize=16 if i == 0 else 10,
                 weight="bold" if i == 0 else "normal", va="top")
    cells = [[str(r["machine"]), str(r["experiment"]), str(r["metric"]), str(r["fs"]),
              str(r["config_hash"])[:10], _cell(r["newest"]), _cell(r["baseline"]),
              _cell(r["change"], pct=True), str(r["status"]),
              f"{int(r['n_points'])}/{int(r['n_failed'])}",
              "ok" if r["last_status"] == "FINISHED"
              else f"{r['last_status']}: {r['last_failure'] or '?'}"]
             for r in rows.to_dict("records")]
    heads = [name for name, _ in TABLE_COLUMNS]
    widths = [max([len(h), *(min(len(c[j]), most) for c in cells)])
              for j, (h, (_, most)) in enumerate(zip(heads, TABLE_COLUMNS, strict=True))]

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(v if len(v) <= w else v[:w - 1] + "~"
                         for v, w in zip(values, widths, strict=True)).ljust(sum(widths))

    top = 0.95 - len(heading) * 0.032 - 0.03
    step = min(0.028, (top - 0.04) / (PDF_ROWS + 1))
    style = {"family": "monospace", "fontsize": 7.5, "va": "top"}
    fig.text(0.04, top, fmt(heads), weight="bold",
             bbox={"facecolor": "#f6f8fa", "edgecolor": "none", "pad": 2}, **style)
    for i, (values, status) in enumerate(zip(cells, rows["status"], strict=True), start=1):
        bad = status == "regression"
        fig.text(0.04, top - i * step, fmt(values), color="#a40e26" if bad else "black",
                 bbox={"facecolor": "#ffebe9", "edgecolor": "none", "pad": 2} if bad else None,
                 **style)


def write_pdf(path: Path, table: pd.DataFrame, heading: Sequence[str], names: Sequence[str],
              plots: Path) -> int:
    """Write the summary PDF: the table pages, then the figures' PNGs, several per page.

    Parameters
    ----------
    path : Path
        The PDF file.
    table : pandas.DataFrame
        The verdicts of :func:`~runners.report.page.verdicts`.
    heading : sequence of str
        Lines at the top of the first page (title, time, commit...).
    names : sequence of str
        The figure of each row (:func:`plot_names`).
    plots : Path
        The folder of :func:`write_pngs` (the figures are embedded as images: drawing
        them once is what keeps a big report fast).

    Returns
    -------
    int
        Number of pages: at most :data:`PDF_TABLE_PAGES` of the table (regressions first)
        and :data:`PDF_FIGURE_PAGES` of figures (from a new page per machine,
        :data:`PDF_GRID` per page); the first page says what was left out.
    """
    import matplotlib.image as mimg
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    machine_of = dict(zip(names, table["machine"], strict=True))
    per_page = PDF_GRID[0] * PDF_GRID[1]
    chunks = [part for m in dict.fromkeys(machine_of.values())
              for items in [[n for n, mm in machine_of.items() if mm == m]]
              for part in (items[k:k + per_page] for k in range(0, len(items), per_page))]
    rows = worst_first(table).head(PDF_TABLE_PAGES * PDF_ROWS)
    shown = chunks[:PDF_FIGURE_PAGES]
    notes = []
    if len(rows) < len(table):
        notes.append(f"table: the first {len(rows)} of {len(table)} series (regressions "
                     "first); all are in data/verdicts.csv")
    if len(shown) < len(chunks):
        notes.append(f"figures: capped at {PDF_FIGURE_PAGES} pages "
                     f"({sum(map(len, shown))} of {len(machine_of)} figures); all are in "
                     "index.html")
    heading = [*heading, *notes]
    pages = 0
    fig = Figure(figsize=A4_LANDSCAPE)
    with PdfPages(path) as pdf:
        for start in range(0, max(len(rows), 1), PDF_ROWS):
            lines = heading if start == 0 else [f"{heading[0]} (table, continued)"]
            _table_page(fig, rows.iloc[start:start + PDF_ROWS], lines)
            pdf.savefig(fig)
            pages += 1
        fig.set_size_inches(*A4_PORTRAIT)
        n_rows, n_cols = PDF_GRID
        for chunk in shown:
            fig.clear()
            fig.suptitle(f"Machine: {machine_of[chunk[0]]}", fontsize=13, weight="bold")
            for i, name in enumerate(chunk):
                r, c = divmod(i, n_cols)
                ax = fig.add_axes((0.02 + c * 0.49, 0.94 - (r + 1) * 0.93 / n_rows,
                                   0.47, 0.93 / n_rows - 0.01))
                ax.imshow(mimg.imread(plots / f"{name}.png"), interpolation="antialiased")
                ax.axis("off")
            pdf.savefig(fig)
            pages += 1
        info = pdf.infodict()
        info["Title"] = heading[0] if heading else "Benchmark results"
        info["Creator"] = "bench report"
    return pages
