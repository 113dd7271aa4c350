"""Pure functions over the runs table (StoreReader.runs_table): column lookup, filters, pivot,
rendering.

Every function takes and returns plain values or pandas frames; none touches the store.
pandas is imported inside functions so that importing this module (``bench --help``) stays
fast.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runners.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

AGGS = ("median", "mean", "min", "max", "count")
FORMATS = ("table", "csv", "markdown")
BUILTIN_COLUMNS = ("run_id", "experiment", "status", "start_time", "end_time")
MISSING = "-"
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


def label(column: str) -> str:
    """The display name of a column: ``tag.machine`` -> ``machine``, ``param.x.y`` -> ``x.y``."""
    for prefix in ("tag.", "param.", "metric."):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def listing(names: Sequence[str], limit: int = 12) -> str:
    """``a, b, c`` or ``a, b, ... (N more)``; ``none`` when empty."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    """Close matches of ``name`` first, then the other candidates, without repeats."""
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.6)
    return [*close, *(c for c in candidates if c not in close)]


def resolve_column(frame: pd.DataFrame, name: str, option: str = "--by") -> str:
    """The column of a runs table a user's name refers to.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table of :meth:`runners.tracking.query.StoreReader.runs_table`.
    name : str
        A built-in column (``experiment``, ``status``, ``run_id`` ...), a full column name
        (``tag.machine``, ``param.bench.ranks``), or a key looked up as tag first, then as
        param (``machine`` -> ``tag.machine``, ``bench.ranks`` -> ``param.bench.ranks``).
    option : str
        The option named in the error message.

    Returns
    -------
    str
        The column name.

    Raises
    ------
    InputError
        When nothing matches; the message lists the available tag and param keys.
    """
    if name in BUILTIN_COLUMNS or (name.startswith(("tag.", "param.")) and name in frame):
        return name
    for column in (f"tag.{name}", f"param.{name}"):
        if column in frame.columns:
            return column
    # a table read with only some columns lists the store's others in attrs
    known = list(dict.fromkeys([*frame.columns, *frame.attrs.get("stored_columns", ())]))
    tags = [label(c) for c in known
            if c.startswith("tag.") and not c.startswith(("tag.mlflow.", "tag.direction."))]
    params = [label(c) for c in known if c.startswith("param.")]
    raise InputError(f"unknown {option} column {name!r}; tags: {listing(_suggest(name, tags))}"
                     f"; params: {listing(_suggest(name, params))}")


def _with_values(frame: pd.DataFrame) -> list[str]:
    """Metric names with at least one value in the table, ``*.median`` ones first."""
    names = [label(c) for c in frame.columns
             if c.startswith("metric.") and frame[c].notna().any()]
    return sorted(names, key=lambda n: (not n.endswith(".median"), n))


def available_metrics(frame: pd.DataFrame) -> list[str]:
    """Metric names with at least one value in the table, ``*.median`` ones first; then,
    for a table read with only some columns, the store's metrics that were not read."""
    unread = [label(c) for c in frame.attrs.get("stored_columns", ())
              if c.startswith("metric.") and c not in frame.columns]
    return [*_with_values(frame), *sorted(unread, key=lambda n: (not n.endswith(".median"), n))]


def resolve_metric(frame: pd.DataFrame, name: str) -> str:
    """The ``metric.<name>`` column of a metric, a base name meaning its median.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table.
    name : str
        ``total_s.median``, or ``total_s`` for ``total_s.median`` (when ``total_s``
        itself is not a metric of the table).

    Returns
    -------
    str
        The column name, a column with at least one value.

    Raises
    ------
    InputError
        When the runs have no such metric; the message lists a few available ones.
    """
    names = _with_values(frame)
    for candidate in (name, f"{name}.median"):
        if candidate in names:
            return f"metric.{candidate}"
    raise InputError(f"unknown metric {name!r} in the matching runs; available: "
                     f"{listing(_suggest(name, available_metrics(frame)), 8)}")


def parse_where(items: Sequence[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings as ``(key, value)`` pairs.

    Raises
    ------
    InputError
        On an item without ``=`` or with an empty key.
    """
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--where {item!r} is not KEY=VALUE; e.g. --where machine=local "
                             "or --where bench.ranks=2")
        pairs.append((key.strip(), value))
    return pairs


def filter_where(frame: pd.DataFrame, where: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows whose column equals one of the given values, for every column (AND of ORs).

    Parameters
    ----------
    frame : pandas.DataFrame
    where : mapping
        ``{column: [value, ...]}``; values are compared as strings.

    Returns
    -------
    pandas.DataFrame
        The matching rows.
    """
    keep = None
    for column, values in where.items():
        hit = frame[column].astype("string").isin([str(v) for v in values]).fillna(False)
        keep = hit if keep is None else keep & hit
    return frame if keep is None else frame[keep.to_numpy(dtype=bool)]


def parse_since(text: str, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The start of a ``--since`` window.

    Parameters
    ----------
    text : str
        An ISO date or date-time (``2025-01-31``, ``2025-01-31T12:00``; UTC unless it has
        an offset) or an age: ``N`` with a unit ``s``, ``m``, ``h``, ``d`` or ``w``
        (``7d``, ``12h``).
    now : pandas.Timestamp, optional
        The reference for ages (default: the current time).

    Returns
    -------
    pandas.Timestamp
        A UTC timestamp.

    Raises
    ------
    InputError
        When the text is neither.
    """
    import pandas as pd

    word = text.strip().lower()
    m = _AGE.match(word)
    if m:
        ref = pd.Timestamp.now(tz="UTC") if now is None else now
        return ref - pd.Timedelta(**{_AGE_UNITS[m.group(2)]: float(m.group(1))})
    if _ISO.match(word):
        try:
            stamp = pd.Timestamp(text.strip())
        except ValueError:
            stamp = None
        if stamp is not None and stamp is not pd.NaT:
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    raise InputError(f"--since {text!r} is not a date or an age; give an ISO date "
                     "(2025-01-31, 2025-01-31T12:00) or an age such as 7d, 12h, 30m, 2w")


def parse_list(text: str) -> list[str]:
    """A comma-separated list, blanks stripped and empty items dropped."""
    return [w.strip() for w in text.split(",") if w.strip()]


def _group_values(column: pd.Series) -> pd.Series:
    """Group keys: numbers when every value is one (so 2 sorts before 16), else strings."""
    import pandas as pd

    codes, uniques = pd.factorize(column)      # a few distinct values among many runs
    if len(column) and (codes >= 0).all():
        numbers = pd.to_numeric(pd.Series(uniques), errors="coerce")
        if numbers.notna().all():
            return pd.Series(numbers.to_numpy()[codes], index=column.index, name=column.name)
    text = pd.Series(uniques, dtype=object).astype(str).to_numpy(dtype=object)
    out = pd.Series(MISSING, index=column.index, name=column.name, dtype=object)
    out[codes >= 0] = text[codes[codes >= 0]]
    return out.astype(str)


def pivot(frame: pd.DataFrame, metric: str, by: Sequence[str],
          columns: Sequence[str] | None = None, agg: str = "median") -> pd.DataFrame:
    """Aggregate one metric of a runs table by some columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table (any frame with the named columns).
    metric : str
        The value column, e.g. ``metric.total_s.median``; rows without a value are left out.
    by : sequence of str
        Columns that make the rows of the result (at least one).
    columns : sequence of str, optional
        Columns whose values become the result's columns (a pivot).
    agg : {"median", "mean", "min", "max", "count"}
        How the runs of a cell are combined.

    Returns
    -------
    pandas.DataFrame
        Flat, sorted by the ``by`` values (numbers numerically; a missing key is ``"-"``).
        Its ``by`` columns are named by :func:`label` (``tag.machine`` -> ``machine``).
        Without ``columns``: one value column named after the metric's label and ``n``,
        the number of runs (only ``n`` for ``agg="count"``).  With ``columns``: one value
        column per value (values joined by ``/`` for several columns), NaN (0 for count)
        where no run exists.

    Raises
    ------
    ValueError
        On an unknown ``agg`` or an empty ``by``.
    KeyError
        On a column not in the frame.
    """
    if agg not in AGGS:
        raise ValueError(f"agg must be one of {', '.join(AGGS)}, got {agg!r}")
    rows, cols = list(by), list(columns or [])
    if not rows:
        raise ValueError("pivot needs at least one 'by' column")
    missing = [c for c in [metric, *rows, *cols] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    keys = list(dict.fromkeys(rows + cols))
    data = frame.loc[frame[metric].notna(), keys].copy()
    for c in keys:
        data[c] = _group_values(data[c])
    data["__value"] = frame.loc[frame[metric].notna(), metric].astype("float64")
    names = {c: label(c) for c in keys}
    if len(set(names.values())) < len(names):   # two columns with one label: keep full names
        names = {c: c for c in keys}
    grouped = data.groupby(keys, sort=True)["__value"]
    if not cols:
        out = grouped.agg(["count"] if agg == "count" else [agg, "count"])
        out.columns = ["n"] if agg == "count" else [label(metric), "n"]
        return out.reset_index().rename(columns=names)
    table = grouped.agg(agg).unstack([keys.index(c) for c in cols])
    if agg == "count":
        table = table.fillna(0).astype("int64")
    table.columns = ["/".join(str(v) for v in (c if isinstance(c, tuple) else (c,)))
                     for c in table.columns]
    return table.reset_index().rename(columns=names)


def _cell(value: Any) -> str:
    """A value as text: floats to 6 significant digits, missing as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A frame as ``table`` (aligned text), ``csv`` or ``markdown`` (GitHub pipe table).

    Returns
    -------
    str
        The text, ending in a newline.

    Raises
    ------
    ValueError
        On an unknown format.
    """
    import pandas as pd

    if fmt == "csv":
        return str(frame.to_csv(index=False))
    if fmt == "table":
        return str(frame.to_string(index=False, na_rep=MISSING,
                                   float_format=lambda v: f"{v:.6g}")) + "\n"
    if fmt != "markdown":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in frame.columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    for row in frame.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"
