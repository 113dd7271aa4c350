"""Regression detection over the history of one benchmark metric (pure functions).

A *series* is one metric of one configuration, ordered by time or commit.  As in
airspeed velocity (``asv/step_detect.py``) it is piecewise constant plus noise:
:func:`detect_steps` finds the change points by an exact penalized fit (L1 or L2 cost,
penalty proportional to a robust noise estimate); :func:`judge` tests the points after
the most recent step against the ones before it (Mann-Whitney U *and* a minimum
relative effect that grows with the series' noise, :mod:`runners.analysis.detector`);
:func:`judge_frame` does so for every series of a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from runners.analysis.detector import (
    DEFAULT_FLOOR,
    DEFAULT_NOISE_FACTOR,
    Comparison,
    compare_at_step,
    fallback_windows,
    relative_change,
    relative_noise,
)
from runners.analysis.stats import (
    MannWhitneyResult,
    isolated_outliers,
    mann_whitney_u,
    noise_level,
    segment_l1_costs,
)

__all__ = ["MannWhitneyResult", "Step", "Verdict", "detect_steps", "judge", "judge_frame",
           "mann_whitney_u", "noise_level"]

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("regression", "improvement", "no change", "not enough data")
DEFAULT_PENALTY = {"l1": 2.0, "l2": 4.0}
"""Penalty factor per step in units of noise * log(n) (l1) or noise**2 * log(n) (l2)."""
MAX_POINTS = 4000  # detect_steps keeps O(n^2) matrices: 4000 points ~ 0.3 GB peak


@dataclass(frozen=True)
class Step:
    """One change point: ``index`` of the first point of the new level, the ``before`` and
    ``after`` levels (segment medians for the L1 cost, means for L2) and the relative
    ``change = (after - before) / |before|`` (``±inf`` if ``before == 0``)."""

    index: int
    before: float
    after: float
    change: float


def detect_steps(
    y: npt.ArrayLike,
    *,
    cost: Literal["l1", "l2"] = "l1",
    penalty: float | None = None,
    min_size: int = 2,
    noise: float | None = None,
) -> list[Step]:
    """Change points of a 1-D series by an exact penalized piecewise-constant fit.

    Minimises ``sum_segments cost(segment) + beta * (number of steps)`` by dynamic
    programming over all segmentations (optimal partitioning, ``O(n^2)`` time and
    memory).  ``cost="l1"`` is ``sum |y - median|`` (robust to outliers, as in asv),
    ``"l2"`` is ``sum (y - mean)^2``.  ``beta = penalty * sigma * log(n)`` for L1 and
    ``penalty * sigma^2 * log(n)`` for L2, ``sigma`` being :func:`noise_level`.

    Parameters
    ----------
    y : array_like
        The series, 1-D and finite, at most :data:`MAX_POINTS` points.
    cost : {"l1", "l2"}
        Segment cost.
    penalty : float, optional
        Penalty factor (higher, fewer steps); default :data:`DEFAULT_PENALTY`.
    min_size : int
        Minimum points per segment; 2 or more makes the L1 fit ignore lone spikes.
    noise : float, optional
        Noise standard deviation to use instead of :func:`noise_level`.

    Returns
    -------
    list of Step
        In increasing order of ``index``; empty when the series is one level.

    Raises
    ------
    ValueError
        On a non-1-D, non-finite or too long series, or invalid parameters.
    """
    x = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError("detect_steps needs a 1-D series of finite values")
    n = x.size
    if n > MAX_POINTS:
        raise ValueError(f"detect_steps handles at most {MAX_POINTS} points, got {n}")
    if cost not in DEFAULT_PENALTY or min_size < 1:
        raise ValueError(f"bad cost {cost!r} or min_size {min_size}")
    sigma = noise_level(x) if noise is None else float(noise)
    if n < 2 * min_size or sigma <= 0.0:
        return []
    # Work in noise units (centred, better conditioned sums): beta = factor * log(n).
    beta = (DEFAULT_PENALTY[cost] if penalty is None else float(penalty)) * math.log(n)
    z = (x - np.median(x)) / sigma
    cmat = segment_l1_costs(z) if cost == "l1" else np.empty((0, 0))
    s1, s2 = np.r_[0.0, np.cumsum(z)], np.r_[0.0, np.cumsum(z * z)]
    best, last = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=np.intp)
    best[0] = 0.0
    for j in range(min_size, n + 1):  # best[j]: optimum of z[:j]; last segment [i, j)
        i = np.arange(j - min_size + 1)
        seg = (cmat[j, i] if cost == "l1"
               else np.maximum(s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / (j - i), 0.0))
        total = best[: j - min_size + 1] + seg
        a = int(np.argmin(total))
        best[j], last[j] = total[a] + beta, a
    bounds = [n]
    while bounds[-1] > 0:
        bounds.append(int(last[bounds[-1]]))
    bounds.reverse()
    level = np.median if cost == "l1" else np.mean
    levels = [float(level(x[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [
        Step(index=bounds[k + 1], before=levels[k], after=levels[k + 1],
             change=relative_change(levels[k + 1], levels[k]))
        for k in range(len(levels) - 1)
    ]


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` concluded about the newest points of a series.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`; ``direction`` is ``"lower"`` or ``"higher"`` (better).
    effect, p_value : float
        ``(latest_median - baseline_median) / |baseline_median|`` and the two-sided
        Mann-Whitney p-value of latest vs baseline (NaN when not judged).
    baseline_median, latest_median, n_baseline, n_latest : float, int
        Medians and sizes of the two windows.
    step_detected : bool
        Whether the windows are split at a detected step (else the fallback windows).
    index_range, commit_range, run_id_range : tuple, optional
        ``(last baseline, first latest)`` point, as positions in the input and as the
        ``commits`` / ``run_ids`` labels when given: the change appeared in between.
    outliers : tuple of int
        Positions of the isolated spikes that were left out.
    noise, threshold : float
        The series' noise over the baseline median; the minimum effect that applied.
    reason : str
        One line explaining the status.
    """

    status: str
    direction: str
    effect: float = math.nan
    p_value: float = math.nan
    baseline_median: float = math.nan
    latest_median: float = math.nan
    n_baseline: int = 0
    n_latest: int = 0
    step_detected: bool = False
    index_range: tuple[int, int] | None = None
    commit_range: tuple[Any, Any] | None = None
    run_id_range: tuple[Any, Any] | None = None
    outliers: tuple[int, ...] = ()
    noise: float = math.nan
    threshold: float = math.nan
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a flat dict (ranges split into ``*_before`` / ``*_after``)."""
        out = asdict(self)
        for key in ("index_range", "commit_range", "run_id_range"):
            pair = out.pop(key)
            stem = key.removesuffix("_range")
            out[f"{stem}_before"], out[f"{stem}_after"] = pair if pair else (None, None)
        return out


def judge(
    values: npt.ArrayLike,
    direction: str = "lower",
    baseline: int | None = None,
    latest: int = 5,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_FLOOR,
    commits: Sequence[Any] | None = None,
    run_ids: Sequence[Any] | None = None,
    *,
    min_points: int = 3,
    max_points: int = 1000,
    penalty: float | None = None,
    outlier_threshold: float | None = 5.0,
    noise_factor: float = DEFAULT_NOISE_FACTOR,
) -> Verdict:
    """Decide whether the newest points of a series regressed.

    A change needs BOTH ``p < alpha`` (two-sided Mann-Whitney, latest vs baseline; at a
    detected step ``alpha / STEP_ALPHA_DIVISOR``) AND ``|effect| >= max(min_effect,
    noise_factor * noise)`` (relative change of the medians; ``noise`` is
    :func:`noise_level` over the baseline median; :mod:`runners.analysis.detector` says
    why), both still true without the most extreme latest point; the sign and
    ``direction`` make it a regression or an improvement.  The windows are split at the
    most recent step of :func:`detect_steps` (L1, ``min_size=min_points``) that is such
    a change (later steps merged into the latest window): latest = every point after
    it, baseline = the level before it (its last ``baseline`` points if given).  Without
    one, the fallback windows of :func:`~runners.analysis.detector.fallback_windows`.
    Isolated spikes are left out first.

    Parameters
    ----------
    values : array_like
        The series, oldest first.  NaN (missing runs) are skipped; reported indices
        refer to positions in ``values``.
    direction : {"lower", "higher"}
        Which way is better: for ``"lower"`` an increase is a regression.
    baseline : int, optional
        Cap on the baseline window size (see above); None uses all the points.
    latest : int
        Latest window size when no step is detected.
    alpha, min_effect : float
        Significance level; floor of the minimum relative change of the medians.
    commits, run_ids : sequence, optional
        Labels aligned with ``values`` (commits, times, run ids) for the change range.
    min_points : int
        Minimum points per window and per segment; fewer gives "not enough data".
    max_points : int
        Only the newest ``max_points`` points are analysed (bounds the O(n^2) cost).
    penalty : float, optional
        Step penalty factor passed to :func:`detect_steps`.
    outlier_threshold : float, optional
        Isolated spikes (:func:`~runners.analysis.stats.isolated_outliers` at this many
        noise sigmas) are left out like NaN; None keeps every point.
    noise_factor : float
        Minimum effect in relative noise sigmas (0 with ``min_effect=0.05``: the old rule).

    Returns
    -------
    Verdict
        The status and the evidence for it.
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    if min_points < 2 or latest < min_points or (baseline or min_points) < min_points:
        raise ValueError("need min_points >= 2 and latest, baseline >= min_points")
    if not (min_effect >= 0.0 and noise_factor >= 0.0):
        raise ValueError("need min_effect >= 0 and noise_factor >= 0")
    y = np.asarray(values, dtype=np.float64).ravel()
    for name, labels in (("commits", commits), ("run_ids", run_ids)):
        if labels is not None and len(labels) != y.size:
            raise ValueError(f"{name} has {len(labels)} labels for {y.size} values")
    where = np.flatnonzero(~np.isnan(y))[-max_points:]
    if not np.isfinite(y[where]).all():
        raise ValueError("values must be finite or NaN")
    spikes = np.zeros(where.size, dtype=bool)
    if outlier_threshold is not None:
        spikes = isolated_outliers(y[where], outlier_threshold)
    dropped = tuple(int(i) for i in where[spikes])
    where = where[~spikes]
    x = y[where]
    n = x.size
    if n < 2 * min_points:
        return Verdict("not enough data", direction, outliers=dropped,
                       reason=f"{n} points, need at least {2 * min_points}")
    sigma = noise_level(x)
    steps = detect_steps(x, min_size=min_points, penalty=penalty, noise=sigma)
    cuts = [0, *(s.index for s in steps)]
    outcome: Comparison | None = None
    while len(cuts) > 1:  # the most recent step that is a change; merge the later ones
        first = cuts[-2] if baseline is None else max(cuts[-2], cuts[-1] - baseline)
        base, new = x[first : cuts[-1]], x[cuts[-1] :]
        outcome = compare_at_step(base, new, alpha, sigma, min_effect, noise_factor)
        if outcome.kind == "change":
            break
        cuts.pop()
    found = len(cuts) > 1
    if not found:
        base, new, outcome = fallback_windows(x, latest, baseline, min_points, alpha, sigma,
                                              min_effect, noise_factor)
    split = n - new.size
    lo, hi = int(where[split - 1]), int(where[split])
    verdict = Verdict(
        "not enough data", direction, n_baseline=base.size, n_latest=new.size,
        step_detected=found, index_range=(lo, hi), outliers=dropped,
        commit_range=None if commits is None else (commits[lo], commits[hi]),
        run_id_range=None if run_ids is None else (run_ids[lo], run_ids[hi]),
    )
    if outcome is None or base.size < min_points or new.size < min_points:
        return replace(verdict, reason=f"windows of {base.size} and {new.size} points, "
                        f"need {min_points} each")
    kind, effect, p, m_base, m_new, threshold = outcome
    noise = relative_noise(sigma, m_base)
    status = "no change"
    if kind == "change":
        status = "regression" if (effect > 0) == (direction == "lower") else "improvement"
    hinges = ", but not without its most extreme latest point" if kind == "hinges" else ""
    reason = (f"{'at a detected step' if found else 'last points vs first points'}: "
              f"median {m_base:.6g} -> {m_new:.6g} ({effect:+.1%}), p={p:.3g} "
              f"(alpha {alpha}, min effect {threshold:.1%} at {noise:.1%} noise){hinges}")
    return replace(verdict, status=status, effect=effect, p_value=p, noise=noise,
                   threshold=threshold, baseline_median=m_base, latest_median=m_new,
                   reason=reason)


def _direction_of(key: Any, direction: str | Mapping[Any, str]) -> str:
    """The direction of the series ``key``: fixed, or looked up by key then key parts."""
    if isinstance(direction, str):
        return direction
    if key in direction:
        return direction[key]
    for part in key if isinstance(key, tuple) else ():
        if part in direction:
            return direction[part]
    raise KeyError(f"no direction for series {key!r}")


def judge_frame(
    df: pd.DataFrame,
    value_col: str,
    group_cols: str | Sequence[str],
    order_col: str,
    direction: str | Mapping[Any, str] = "lower",
    *,
    direction_col: str | None = None,
    commit_col: str | None = None,
    run_id_col: str | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Apply :func:`judge` to every series of a long table, one output row per series.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run and metric: ``value_col`` is the measured value, ``group_cols``
        identify a series (e.g. metric and configuration), ``order_col`` orders its
        points (time, commit number; ties keep the input order).
    value_col, order_col : str
    group_cols : str or sequence of str
    direction : {"lower", "higher"} or mapping
        Better direction of every series, or a mapping looked up with the series key
        (a tuple when there are several group columns) and, failing that, with each
        part of the key in turn (e.g. ``{"latency": "lower", "bandwidth": "higher"}``).
    direction_col : str, optional
        Per-row direction (constant within a series); overrides ``direction``.
    commit_col, run_id_col : str, optional
        Columns labelling the range where a change appeared.
    **options
        Keyword arguments of :func:`judge` (``baseline``, ``latest``, ``alpha``,
        ``min_effect``, ``noise_factor``, ``min_points``, ``max_points``, ``penalty``).

    Returns
    -------
    pandas.DataFrame
        Sorted by the group key: the group columns, ``n_points``, the fields of
        :meth:`Verdict.to_dict` (``status``, ``effect``, ``p_value``, ...,
        ``index_before``/``index_after`` positions within the ordered series,
        ``commit_*``, ``run_id_*``) and ``order_before``/``order_after``.

    Raises
    ------
    KeyError
        On a missing column or a series without a direction.
    """
    import pandas as pd

    keys = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    extra = [c for c in (direction_col, commit_col, run_id_col) if c is not None]
    missing = [c for c in [value_col, order_col, *keys, *extra] if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    data = df.sort_values(order_col, kind="stable")
    gid = data.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    rows_of = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[rows_of], np.arange(int(gid.max(initial=-1)) + 2))
    values = data[value_col].to_numpy(dtype=np.float64)
    order = data[order_col].to_numpy()
    labels = {c: data[c].to_numpy() for c in extra}
    key_frame = data[keys].iloc[rows_of[bounds[:-1]]].reset_index(drop=True)
    out: list[dict[str, Any]] = []
    for g, key in enumerate(key_frame.itertuples(index=False, name=None)):
        rows = rows_of[bounds[g] : bounds[g + 1]]
        series_key = key if len(keys) > 1 else key[0]
        if direction_col is not None:
            dirs = pd.unique(labels[direction_col][rows])
            if len(dirs) != 1:
                raise ValueError(f"series {series_key!r} has directions {list(dirs)}")
            how = str(dirs[0])
        else:
            how = _direction_of(series_key, direction)
        verdict = judge(
            values[rows], how,
            commits=None if commit_col is None else labels[commit_col][rows],
            run_ids=None if run_id_col is None else labels[run_id_col][rows],
            **options,
        )
        row = {"n_points": int(rows.size), **verdict.to_dict()}
        lo, hi = row["index_before"], row["index_after"]
        row["order_before"] = None if lo is None else order[rows[lo]]
        row["order_after"] = None if hi is None else order[rows[hi]]
        out.append(row)
    result = pd.DataFrame(out)
    if not out:
        result = pd.DataFrame(columns=["n_points", *Verdict("", "").to_dict(),
                                       "order_before", "order_after"])
    return pd.concat([key_frame, result], axis=1)
