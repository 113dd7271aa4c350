"""Descriptive statistics and rank tests of benchmark measurements (pure functions).

:func:`summarize` / :func:`summarize_frame`: ``min``, ``median``, ``mean``, ``max``,
``std`` (sample, ``ddof=1``; 0.0 for one value), ``cv`` (``std / |mean|``; 0.0 when the
mean is 0 or n < 2) and ``n``.  :func:`mann_whitney_u` (scipy's), :func:`noise_level`,
:func:`isolated_outliers` and :func:`segment_l1_costs` serve
:mod:`runners.analysis.regress`.  pandas is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

STATS: tuple[str, ...] = ("min", "median", "mean", "max", "std", "cv", "n")
"""The statistics :func:`summarize` returns, in this order."""


def summarize(values: Sequence[float] | npt.ArrayLike) -> dict[str, float]:
    """Summary statistics of one set of measurements.

    Parameters
    ----------
    values : sequence of float or array_like
        The measurements (any shape; flattened).  Must be non-empty and free of NaN.

    Returns
    -------
    dict of str to float
        Keys ``min``, ``median``, ``mean``, ``max``, ``std``, ``cv``, ``n`` (see
        :data:`STATS`).  ``std`` is the sample standard deviation (``ddof=1``), ``0.0``
        for a single value.  ``cv`` is ``std / |mean|``, ``0.0`` when the mean is zero or
        there is a single value.  ``n`` is an ``int``.

    Raises
    ------
    ValueError
        If ``values`` is empty or contains NaN.
    TypeError
        If ``values`` is not numeric.

    Examples
    --------
    >>> s = summarize([1.0, 2.0, 3.0, 4.0])
    >>> s["median"], s["mean"], round(s["std"], 4)
    (2.5, 2.5, 1.291)
    """
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"summarize needs numbers, got dtype {arr.dtype}")
    x = arr.astype(np.float64).ravel()
    n = int(x.size)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    if np.isnan(x).any():
        raise ValueError("summarize got NaN values; drop missing measurements first")
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return {
        "min": float(np.min(x)),
        "median": float(np.median(x)),
        "mean": mean,
        "max": float(np.max(x)),
        "std": std,
        "cv": 0.0 if n < 2 or mean == 0.0 else std / abs(mean),
        "n": n,
    }


def summarize_frame(
    df: pd.DataFrame,
    value_cols: str | Sequence[str],
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Summary statistics of several metric columns, optionally per group.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per measurement.
    value_cols : str or sequence of str
        The numeric columns to summarise.  Missing values (NaN) are skipped per column,
        so a metric that only some rows report is summarised over those rows.
    by : str or sequence of str, optional
        Columns to group by.  Groups whose key contains NaN are kept.

    Returns
    -------
    pandas.DataFrame
        Without ``by``: a single row.  With ``by``: one row per group, sorted by the group
        key, with the ``by`` columns first.  Then, for each metric ``m`` in
        ``value_cols``, the columns ``m.min``, ``m.median``, ``m.mean``, ``m.max``,
        ``m.std``, ``m.cv``, ``m.n`` with the same definitions as :func:`summarize`.
        A metric with no value in a group has ``n == 0`` and NaN statistics.

    Raises
    ------
    ValueError
        If ``df`` has no rows or ``value_cols`` is empty.
    KeyError
        If a column is missing.
    TypeError
        If a value column is not numeric.
    """
    import pandas as pd

    cols = [value_cols] if isinstance(value_cols, str) else list(value_cols)
    keys: list[str] = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if not cols:
        raise ValueError("summarize_frame needs at least one value column")
    missing = [c for c in [*cols, *keys] if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    if len(df) == 0:
        raise ValueError("summarize_frame needs at least one row")
    for c in cols:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            raise TypeError(f"column {c!r} is not numeric (dtype {df[c].dtype})")

    values = df[cols].astype(np.float64)
    # Without ``by``, one group holding every row.
    groups = [df[k] for k in keys] if keys else np.zeros(len(df), dtype=np.int8)
    grouped = values.groupby(groups, dropna=False, sort=True)
    agg = {
        "min": grouped.min(),
        "median": grouped.median(),
        "mean": grouped.mean(),
        "max": grouped.max(),
        "std": grouped.std(ddof=1),
        "n": grouped.count(),
    }
    out: dict[str, object] = {}
    for c in cols:
        n = agg["n"][c].to_numpy(dtype=np.int64)
        mean = agg["mean"][c].to_numpy(dtype=np.float64)
        std = agg["std"][c].to_numpy(dtype=np.float64)
        std = np.where(n == 1, 0.0, std)  # pandas gives NaN for one value
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.where((n < 2) | (mean == 0.0), 0.0, std / np.abs(mean))
        cv = np.where(n == 0, np.nan, cv)
        out[f"{c}.min"] = agg["min"][c].to_numpy(dtype=np.float64)
        out[f"{c}.median"] = agg["median"][c].to_numpy(dtype=np.float64)
        out[f"{c}.mean"] = mean
        out[f"{c}.max"] = agg["max"][c].to_numpy(dtype=np.float64)
        out[f"{c}.std"] = std
        out[f"{c}.cv"] = cv
        out[f"{c}.n"] = n
    result = pd.DataFrame(out, index=agg["n"].index)
    if not keys:
        return result.reset_index(drop=True)
    result = result.reset_index()
    result.columns = [*keys, *out.keys()]
    return result


class MannWhitneyResult(NamedTuple):
    """Mann-Whitney U statistic of the first sample and the two-sided p-value."""

    u: float
    p_value: float


def mann_whitney_u(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    method: Literal["auto", "exact", "asymptotic"] = "auto",
) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``).

    Parameters
    ----------
    a, b : array_like
        The two samples (1-D, finite, non-empty).
    method : {"auto", "exact", "asymptotic"}
        ``"exact"``: the exact null distribution (needs no ties); ``"asymptotic"``: normal
        approximation with tie and continuity corrections; ``"auto"``: exact when there
        are no ties and both samples have at most 20 values, else asymptotic (scipy's own
        "auto" switches at 8 values, which would change the verdicts of short series).

    Returns
    -------
    MannWhitneyResult
        ``(u, p_value)``: ``u`` is the U statistic of ``a`` (pairs with ``a > b``, ties
        counting 1/2); ``p_value`` is two-sided (1.0 when every value is tied).

    Raises
    ------
    ValueError
        On empty or non-finite samples, or ``method="exact"`` with ties.
    """
    from scipy.stats import mannwhitneyu

    x = np.asarray(a, dtype=np.float64).ravel()
    w = np.asarray(b, dtype=np.float64).ravel()
    if x.size == 0 or w.size == 0 or not (np.isfinite(x).all() and np.isfinite(w).all()):
        raise ValueError("mann_whitney_u needs two non-empty samples of finite values")
    both = np.concatenate((x, w))
    ties = bool(np.unique(both).size < both.size)
    if method == "auto":
        method = "exact" if not ties and max(x.size, w.size) <= 20 else "asymptotic"
    if method == "exact" and ties:
        raise ValueError("exact Mann-Whitney needs no ties")
    if method not in ("exact", "asymptotic"):
        raise ValueError(f"unknown method {method!r}")
    if np.unique(both).size == 1:      # every value tied: no evidence either way
        return MannWhitneyResult(x.size * w.size / 2.0, 1.0)
    res = mannwhitneyu(x, w, alternative="two-sided", method=method, use_continuity=True)
    return MannWhitneyResult(float(res.statistic), min(float(res.pvalue), 1.0))


def noise_level(y: npt.ArrayLike) -> float:
    """Robust noise standard deviation of a series, from its first differences.

    Parameters
    ----------
    y : array_like
        The series (1-D, finite).

    Returns
    -------
    float
        ``1.4826 * MAD(diff(y)) / sqrt(2)``: steps and single outliers only touch one or
        two differences, so they barely move it.  Falls back to the mean absolute
        deviation of the differences, then to ``std(y)``, when the MAD is 0 (quantized
        data); 0.0 for a constant series.
    """
    x = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 3:
        return float(np.std(x, ddof=1)) if x.size == 2 else 0.0
    d = np.diff(x)
    dev = np.abs(d - np.median(d))
    tiny = 1e-9 * max(float(np.max(np.abs(x))), 1e-300)   # rounding, not noise
    sigma = 1.4826 * float(np.median(dev)) / math.sqrt(2.0)
    if sigma <= tiny:
        sigma = float(np.mean(dev)) * math.sqrt(math.pi / 2.0) / math.sqrt(2.0)
    if sigma <= tiny:
        sigma = float(np.std(x, ddof=1))
    return sigma if sigma > tiny else 0.0


def isolated_outliers(
    y: npt.ArrayLike, threshold: float = 5.0, noise: float | None = None
) -> np.ndarray:
    """Mask of isolated spikes: points far from BOTH their neighbours.

    Parameters
    ----------
    y : array_like
        The series (1-D, finite).
    threshold : float
        "Far" means a difference above ``threshold * noise``.  The end points have one
        neighbour, the missing side counts as far: a last point off the level is flagged
        (the first point of a new level is, until the next point confirms it).
    noise : float, optional
        Noise standard deviation; default :func:`noise_level`.

    Returns
    -------
    numpy.ndarray of bool
        True for the outliers.  Two consecutive spikes, or a step, are not flagged.
    """
    x = np.asarray(y, dtype=np.float64).ravel()
    sigma = noise_level(x) if noise is None else float(noise)
    if x.size < 2 or sigma <= 0.0:
        return np.zeros(x.size, dtype=bool)
    far = np.abs(np.diff(x)) > threshold * sigma  # between point i and i + 1
    return np.concatenate(([True], far)) & np.concatenate((far, [True]))


def segment_l1_costs(y: npt.ArrayLike) -> np.ndarray:
    """Sum of absolute deviations from the median, ``min_m sum |y[i:j] - m|``, of every window.

    Parameters
    ----------
    y : array_like
        A 1-D series of ``n`` finite values.

    Returns
    -------
    numpy.ndarray
        ``C`` of shape ``(n + 1, n + 1)`` with ``C[j, i]`` the cost of ``y[i:j]`` for
        ``0 <= i < j <= n`` (end first: a column of the DP is a contiguous row); the
        other entries are 0.

    Notes
    -----
    Every window keeps a doubly linked list of its points in sorted order (column
    ``rank + 1``; 0 and ``n + 1`` are sentinels), its lower median and the sums of the
    values below/above it.  Deleting a point moves the median by at most one list
    position, so the windows ``[i, n)`` are built by deleting from the left (one row
    copy each), then all windows ``[i, e)`` shrink together from the right, each step a
    few vectorised ``O(n)`` updates: ``O(n^2)`` time and memory in total.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    n = y.size
    if n == 0:
        return np.zeros((1, 1))
    w = n + 2
    order = np.argsort(y, kind="stable")
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)
    val = np.concatenate(([0.0], y[order], [0.0]))
    vals = val.tolist()
    nxt = np.empty((n, w), dtype=np.int32)
    prv = np.empty((n, w), dtype=np.int32)
    nxt[0], prv[0] = np.arange(1, w + 1), np.arange(-1, w - 1)
    med = np.empty(n, dtype=np.intp)
    lo, hi = np.empty(n), np.empty(n)
    m = (n - 1) // 2 + 1
    lo_s, hi_s = float(val[1:m].sum()), float(val[m + 1 : n + 1].sum())
    med[0], lo[0], hi[0] = m, lo_s, hi_s
    for i in range(1, n):  # window [i, n) = window [i - 1, n) minus point i - 1
        nxt[i], prv[i] = nxt[i - 1], prv[i - 1]
        m, lo_s, hi_s = _delete(nxt[i], prv[i], int(rank[i - 1]) + 1, m, n - i + 1,
                                lo_s, hi_s, vals)
        med[i], lo[i], hi[i] = m, lo_s, hi_s
    cost = np.zeros((n + 1, n + 1))
    rows = np.arange(n)
    length = n - rows
    cost[n, :n] = hi - lo + val[med] * (2 * ((length - 1) // 2) + 1 - length)
    # Column-major flat copies: a deletion touches column c of every row contiguously.
    nf, pf = nxt.T.ravel(), prv.T.ravel()
    del nxt, prv
    for e in range(n - 1, 0, -1):  # windows [i, e + 1) -> [i, e), for all i < e
        r = rows[:e]
        c = int(rank[e]) + 1
        p, s = pf[c * n : c * n + e], nf[c * n : c * n + e]
        nf[p * n + r] = s
        pf[s * n + r] = p
        m_e = med[:e]
        odd = ((e + 1 - r) & 1).astype(bool)
        below, above, at = c < m_e, c > m_e, c == m_e
        up = ~odd & (below | at)
        down = odd & (above | at)
        new = np.where(up, nf[m_e * n + r], np.where(down, pf[m_e * n + r], m_e))
        vnew, vold, vq = val[new], val[m_e], val[c]
        lo_e, hi_e = lo[:e], hi[:e]
        lo_e += np.where(up & ~at, vold, 0.0) - np.where(down, vnew, 0.0) - below * vq
        hi_e += np.where(down & ~at, vold, 0.0) - np.where(up, vnew, 0.0) - above * vq
        med[:e] = new
        ln = e - r
        cost[e, :e] = hi_e - lo_e + vnew * (2 * ((ln - 1) // 2) + 1 - ln)
    np.maximum(cost, 0.0, out=cost)  # rounding
    return cost


def _delete(
    nxt: np.ndarray, prv: np.ndarray, c: int, m: int, length: int,
    lo: float, hi: float, vals: list[float],
) -> tuple[int, float, float]:
    """Remove column ``c`` from one window of ``length`` points whose median is ``m``.

    Returns the new median column and the new sums below / above it.
    """
    p, s = int(prv[c]), int(nxt[c])
    nxt[p], prv[s] = s, p
    odd = length % 2 == 1  # then the median position drops by one, else it stays
    if c < m:
        lo -= vals[c]
    elif c > m:
        hi -= vals[c]
    new = m
    if not odd and c <= m:
        new = s if c == m else int(nxt[m])
        hi -= vals[new]
        lo += vals[m] if c != m else 0.0
    elif odd and c >= m:
        new = p if c == m else int(prv[m])
        lo -= vals[new]
        hi += vals[m] if c != m else 0.0
    return new, lo, hi
