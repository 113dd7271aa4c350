"""A/B comparison of two sets of runs (``bench compare --baseline … --contender …``), as
``asv compare`` and ``pyperf compare_to`` do it.

The runs of the two sides are matched by config: the experiment, ``machine``, ``fs`` and
every param, except the params that differ *by design* between the sides (their value sets
on the two sides are disjoint: a code version, an env setting, the swept value under
test).  For each matched config and metric: the median of each side over its trials, the
ratio contender / baseline and a two-sided Mann-Whitney U test over the trials (the
per-trial values: the history of ``<name>`` for a ``<name>.median`` metric, step = trial;
a run without such a history, e.g. a curve, counts as one value).  A row is marked ``+``
(worse, by the metric's direction), ``-`` (better), ``~`` (no significant change: p >=
alpha or a ratio within the factor), ``x`` (failed or missing on one side) or ``n/a``
(too few values for the test ever to reach alpha).

Pure functions over pandas frames; nothing here touches the store.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runners.analysis.stats import mann_whitney_u
from runners.analysis.table import MISSING, label, listing
from runners.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

SIDES = ("baseline", "contender")
#: The column of a runs table saying which side a run is on.
SIDE = "side"
#: Always matched: what benchmark ran where.
MATCHED = ("experiment", "tag.machine", "tag.fs")
#: Params that are no part of a config (a sweep job's run name, where the store is, the
#: site that ran it and its agents' claims).
NOT_CONFIG = ("param.run_name", "param.tracking.", "param.site.")
WORSE, BETTER, SAME, MISSING_MARK = "+", "-", "~", "x"
LEGEND = {WORSE: "worse", BETTER: "better", SAME: "unchanged", MISSING_MARK: "missing"}


def config_params(frame: pd.DataFrame) -> list[str]:
    """The ``param.*`` columns that are part of a run's config."""
    return [c for c in frame.columns if c.startswith("param.") and not c.startswith(NOT_CONFIG)]


def _values(frame: pd.DataFrame, column: str) -> set[str]:
    return set(frame[column].astype(object).where(frame[column].notna(), MISSING).astype(str))


def by_design(frame: pd.DataFrame) -> list[str]:
    """The params whose value sets on the two sides are disjoint (column names, sorted)."""
    sides = [frame[frame[SIDE] == s] for s in SIDES]
    return sorted(c for c in config_params(frame)
                  if not _values(sides[0], c) & _values(sides[1], c))


def min_trials(alpha: float) -> int:
    """The fewest trials per side with which a two-sided Mann-Whitney U test can reach
    ``alpha`` (its smallest p-value with n trials each side is 2 / C(2n, n))."""
    n = 1
    while 2 / math.comb(2 * n, n) > alpha and n < 1000:
        n += 1
    return n


def judge(base: Sequence[float], cont: Sequence[float], ratio: float, direction: str,
          alpha: float, factor: float) -> tuple[str, float]:
    """The mark of one row and the test's p-value (NaN when there is no test).

    Parameters
    ----------
    base, cont : sequence of float
        The per-trial values of each side.
    ratio : float
        Contender / baseline of the medians.
    direction : {"lower", "higher"}
        Which way is better.
    alpha, factor : float
        The significance level, and the least ratio (or 1 / ratio) that counts as a change.

    Returns
    -------
    tuple
        ``(mark, p)``: ``+`` worse, ``-`` better, ``~`` no significant change, or
        ``n/a (need >= N trials each side)`` when the samples are too small for any
        difference to reach ``alpha``.
    """
    n, m = len(base), len(cont)
    if n == 0 or m == 0 or 2 / math.comb(n + m, n) > alpha:
        return f"n/a (need >= {min_trials(alpha)} trials each side)", float("nan")
    p = mann_whitney_u(base, cont).p_value
    big = math.isfinite(ratio) and ratio > 0 and max(ratio, 1 / ratio) >= factor
    if p >= alpha or not big:
        return SAME, p
    worse = ratio > 1 if direction != "higher" else ratio < 1
    return (WORSE if worse else BETTER), p


def _keys(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The key columns as strings, a missing value as ``-``."""
    out = frame[list(keys)].astype(object)
    return out.where(out.notna(), MISSING).astype(str)


def unmatched(frame: pd.DataFrame, keys: Sequence[str]) -> str:
    """Why no config matches: ``key (baseline values vs contender values)`` of each key
    whose value sets differ."""
    sides = [frame[frame[SIDE] == s] for s in SIDES]
    notes = []
    for key in keys:
        have = [sorted(_values(s, key)) for s in sides]
        if have[0] != have[1]:
            notes.append(f"{label(key)} ({listing(have[0], 3)} vs {listing(have[1], 3)})")
    return "; ".join(notes) or "nothing (no run has the metric on both sides)"


def compare_sides(frame: pd.DataFrame, history: pd.DataFrame,
                  metrics: Mapping[str, Sequence[str]], alpha: float = 0.05,
                  factor: float = 1.05) -> tuple[pd.DataFrame, list[str]]:
    """Match the runs of two sides by config and judge each metric.

    Parameters
    ----------
    frame : pandas.DataFrame
        A runs table (``runs_table`` columns) of both sides, with a ``side`` column
        (``baseline`` or ``contender``); runs of any status (a side whose runs of a config
        all failed has no value there).
    history : pandas.DataFrame
        Per-trial values: ``run_id``, ``key``, ``step``, ``value`` (the history of
        ``<name>`` for each judged ``<name>.median``).
    metrics : mapping
        ``{experiment: [metric column, ...]}`` to judge, e.g. ``metric.total_s.median``.
    alpha, factor : float
        See :func:`judge`.

    Returns
    -------
    tuple
        ``(rows, by-design params)``.  Rows: the config keys that vary (``experiment``
        when several, ``machine``, ``fs``, varying params), then ``metric``, ``baseline``,
        ``contender`` (medians), ``ratio``, ``p``, ``n`` (values per side: trials, or
        runs when the runs have no per-trial history) and ``mark``.

    Raises
    ------
    InputError
        When no config has a value of a metric on both sides; the message names the keys
        whose values differ between the sides.
    """
    import pandas as pd

    designed = by_design(frame)
    keys = [c for c in MATCHED if c in frame.columns]
    keys += [c for c in config_params(frame) if c not in designed]
    data = _keys(frame, keys)
    shown = [k for k in keys if k in MATCHED[1:] or (data[k].nunique() > 1 and (
        k == "experiment" or not _follows(data, [m for m in MATCHED if m in keys], k)))]
    trials = {(r, k): g.tolist()
              for (r, k), g in history.groupby(["run_id", "key"], sort=False)["value"]}
    columns = sorted({c for cs in metrics.values() for c in cs if c in frame.columns})
    done = (frame["status"] == "FINISHED").tolist()
    ids = frame["run_id"].astype(str).tolist()
    values = {c: frame[c].tolist() for c in columns}
    # {config: {side: [row position of each run]}}, in plain Python: a few thousand runs
    groups: dict[tuple[str, ...], dict[str, list[int]]] = {}
    for i, (config, side) in enumerate(zip(data.itertuples(index=False, name=None),
                                           frame[SIDE], strict=True)):
        groups.setdefault(config, {s: [] for s in SIDES})[side].append(i)
    directions = {c: _first(frame, f"tag.direction.{label(c).removesuffix('.median')}")
                  for c in columns}
    rows: list[dict[str, Any]] = []
    matched = False
    for config in sorted(groups, key=lambda t: tuple(map(_natural, t))):
        row = dict(zip(keys, config, strict=True))
        for column in metrics.get(row["experiment"], []):
            name = label(column).removesuffix(".median")
            got: dict[str, tuple[float, list[float]]] = {}
            for side in SIDES:
                mine = [i for i in groups[config][side] if done[i] and column in values
                        and math.isfinite(values[column][i])]
                per_trial = [v for i in mine for v in trials.get((ids[i], name), [])
                             if math.isfinite(v)] if label(column).endswith(".median") else []
                # runs without a per-trial history (a curve, an old import) count one each
                sample = per_trial or [values[column][i] for i in mine]
                got[side] = (statistics.median(sample) if sample else float("nan"), sample)
            (b, bt), (c, ct) = got["baseline"], got["contender"]
            ratio = c / b if b and not (math.isnan(b) or math.isnan(c)) else float("nan")
            if math.isnan(b) or math.isnan(c):
                mark, p = MISSING_MARK, float("nan")
            else:
                matched = True
                mark, p = judge(bt, ct, ratio, directions[column] or "lower", alpha, factor)
            rows.append({**{label(k): row[k] for k in shown}, "metric": label(column),
                         "baseline": b, "contender": c, "ratio": round(ratio, 3),
                         "p": float(f"{p:.3g}"), "n": f"{len(bt)}/{len(ct)}",
                         "mark": mark})
    if not matched:
        raise InputError(f"no config of the baseline matches one of the contender with a "
                         f"value on both sides; they differ in: {unmatched(frame, keys)}")
    return pd.DataFrame(rows), [label(c) for c in designed]


def _natural(value: str) -> tuple[int, float, str]:
    """A sort key: numbers numerically (2 before 16), before words."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _follows(data: pd.DataFrame, by: list[str], column: str) -> bool:
    """Whether ``column`` takes one value per value of ``by`` (``machine.name`` follows
    ``machine``): nothing a table needs to show twice."""
    return bool(by) and bool((data.groupby(by)[column].nunique() <= 1).all())


def _first(frame: pd.DataFrame, column: str) -> str:
    """The first value of a column, '' when it has none."""
    if column not in frame:
        return ""
    values = frame[column].dropna()
    return str(values.iloc[0]) if len(values) else ""


def summary(rows: pd.DataFrame) -> str:
    """``2 worse, 1 better, 5 unchanged`` (plus ``n/a`` and ``missing`` when any)."""
    marks = [str(m) for m in rows["mark"]]
    parts = [f"{marks.count(WORSE)} worse", f"{marks.count(BETTER)} better",
             f"{marks.count(SAME)} unchanged"]
    too_few = sum(m.startswith("n/a") for m in marks)
    if too_few:
        parts.append(f"{too_few} n/a (too few trials)")
    if marks.count(MISSING_MARK):
        parts.append(f"{marks.count(MISSING_MARK)} missing or failed on one side")
    return ", ".join(parts)
