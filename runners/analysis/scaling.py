"""Strong and weak scaling of a sweep over ranks or nodes (pure functions over runs tables).

As Ramble's scaling reports and Thicket's scaling studies: the runs of a sweep are grouped
into *curves* (one per other configuration that differs, e.g. machine or fs), each curve's
runs are reduced to the median of the metric at every x (ranks or nodes), and each point is
compared with the smallest x of its curve, ``(x1, t1)``:

- **strong** scaling (fixed total work): ideal ``t1 * x1 / x``, speed-up ``t1 / t``,
  efficiency ``speed-up / (x / x1)``;
- **weak** scaling (fixed work per rank): ideal ``t1``, efficiency ``t1 / t``, speed-up
  the scaled one (Gustafson's) ``(x / x1) * t1 / t``, so that efficiency is
  ``speed-up / (x / x1)`` in both modes.

A metric whose better direction is ``higher`` (a rate, e.g. bandwidth) is read as the
reciprocal of a time: its ideal is ``v1 * x / x1`` (strong) or ``v1`` (weak) and its gain
``v / v1``.  pandas is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runners.analysis.table import MISSING, label, listing
from runners.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

MODES = ("strong", "weak")
#: The x axes of ``bench scaling --by``: the param each one is.
AXES = {"ranks": "bench.ranks", "nodes": "machine.nodes"}
#: Columns that make separate curves whenever they take more than one value.
FIXED_KEYS = ("experiment", "tag.machine", "tag.fs")
#: Params that differ from run to run without changing what is measured.
VOLATILE = frozenset({"param.run_name"})
#: The value columns of :func:`scaling_table`, after the curve keys and x.
COLUMNS = ("runs", "median", "ideal", "speedup", "efficiency")


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The columns as strings (a missing value is ``"-"``): values that group runs."""
    return frame[list(columns)].astype(object).where(frame[list(columns)].notna(),
                                                     MISSING).astype(str)


def curve_keys(frame: pd.DataFrame, x: str) -> list[str]:
    """The columns that split a scaling study's runs into curves.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs of the study (a runs table of
        :meth:`runners.tracking.query.StoreReader.runs_table`).
    x : str
        The x column, e.g. ``param.bench.ranks``; never a curve key.

    Returns
    -------
    list of str
        :data:`FIXED_KEYS` that take more than one value, then every other param that
        takes more than one value *at one x* (a different configuration measured at the
        same ranks; a param that follows x, such as a weak-scaling problem size or ranks
        derived from nodes, does not split).  A key that splits no further than the keys
        before it is left out (``param.machine.name`` after ``tag.machine``).  Params in
        :data:`VOLATILE` never split.
    """
    if frame.empty:
        return []
    fixed = [c for c in FIXED_KEYS if c in frame.columns and c != x]
    params = sorted(c for c in frame.columns
                    if c.startswith("param.") and c != x and c not in VOLATILE)
    keys = _keys(frame, [*fixed, *params, x])
    chosen: list[str] = []
    for column in [*fixed, *params]:
        if keys[column].nunique() < 2:
            continue
        if column not in fixed and (keys.groupby(x)[column].nunique() < 2).all():
            continue
        before = len(keys.drop_duplicates(chosen)) if chosen else 1
        if len(keys.drop_duplicates([*chosen, column])) > before:
            chosen.append(column)
    return chosen


def scaling_table(frame: pd.DataFrame, x: str, metric: str, groups: Sequence[str] = (),
                  mode: str = "strong", higher: bool = False) -> pd.DataFrame:
    """The scaling table of a study: one row per curve and x.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs (any frame with the named columns); rows without a value of ``metric``
        are left out.
    x : str
        The x column (ranks or nodes), positive numbers (stored as strings or numbers).
    metric : str
        The measured column, e.g. ``metric.total_s.median``; positive values.
    groups : sequence of str
        Columns whose values make separate curves (see :func:`curve_keys`).
    mode : {"strong", "weak"}
        Fixed total work, or fixed work per rank.
    higher : bool
        The metric is better when higher (a rate): read as the reciprocal of a time.

    Returns
    -------
    pandas.DataFrame
        Columns: the ``groups`` (named by :func:`runners.analysis.table.label`; a missing
        value is ``"-"``), x (named by its label; integers when every value is one), then
        :data:`COLUMNS`: ``runs`` (runs at that point), ``median`` (their median),
        ``ideal``, ``speedup`` and ``efficiency`` against the smallest x of the curve.
        Sorted by the groups, then x.

    Raises
    ------
    ValueError
        On an unknown ``mode``.
    InputError
        When x is not a positive number, the metric is not positive, or the runs have
        fewer than two distinct x values.
    """
    import pandas as pd

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    data = frame.loc[frame[metric].notna()]
    xs = pd.to_numeric(data[x], errors="coerce")
    bad = sorted({str(v) for v in data.loc[xs.isna() | (xs <= 0), x]})
    if bad:
        raise InputError(f"{label(x)} must be a positive number in every run; got "
                         f"{listing(bad, 5)}")
    values = data[metric].astype("float64")
    if (values <= 0).any():
        raise InputError(f"{label(metric)} has values <= 0 (e.g. {values.min():g}); a "
                         "scaling study needs positive times or rates")
    distinct = sorted(xs.unique())
    if len(distinct) < 2:
        only = f"={distinct[0]:g}" if distinct else " values"
        raise InputError(f"a scaling study needs at least two distinct {label(x)} values; "
                         f"the matching runs have only {label(x)}{only}")
    names = {c: label(c) for c in [*groups, x]}
    if len(set(names.values())) < len(names):    # two columns with one label: full names
        names = {c: c for c in names}
    xname = names[x]
    long = _keys(data, groups).rename(columns=names)
    long[xname] = xs.astype("int64") if bool((xs == xs.round()).all()) else xs
    long["value"] = values
    cols = [names[g] for g in groups]
    out = long.groupby([*cols, xname], sort=True)["value"].agg(
        runs="count", median="median").reset_index()
    curve = out.groupby([out[c] for c in cols] or [pd.Series(0, index=out.index)],
                        sort=False)
    ratio = out[xname] / curve[xname].transform("first")
    base = curve["median"].transform("first")
    gain = out["median"] / base if higher else base / out["median"]
    if mode == "strong":
        out["ideal"] = base * ratio if higher else base / ratio
        out["speedup"] = gain
    else:
        out["ideal"] = base
        out["speedup"] = gain * ratio
    out["efficiency"] = out["speedup"] / ratio
    return out


def x_column(table: pd.DataFrame) -> str:
    """The x column of a :func:`scaling_table` (the one before :data:`COLUMNS`)."""
    return str(table.columns[len(table.columns) - len(COLUMNS) - 1])


def curves(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The curves of a :func:`scaling_table`: ``(name, its rows)``, in the table's order.

    The name is ``key=value, ...`` of the curve's group columns (``all runs`` when the
    table has none).
    """
    groups = list(table.columns[:len(table.columns) - len(COLUMNS) - 1])
    if not groups:
        return [("all runs", table)]
    out = []
    for key, rows in table.groupby(groups, sort=False):
        values = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(f"{g}={v}" for g, v in zip(groups, values, strict=True)), rows))
    return out
