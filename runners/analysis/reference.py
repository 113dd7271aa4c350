"""Reference bands learnt from a series' accepted history: ``bench regress --against
reference`` and ``bench baseline show``.

The reference of a series is the median of its last ``window`` accepted points, and its
band ``median ± max(w × sigma, min_effect × |median|)``: ``sigma`` the robust noise of the
recent points (from successive differences), ``w`` the ``k``-sigma quantile widened for
the few points it was learnt from (:func:`widening`), the floor keeping a near-noiseless
series from alarming on a 0.1 % wobble.  The history is walked oldest first from the
series' newest ``bench baseline accept`` (see :mod:`runners.analysis.annotations`): a
point inside the band joins the reference, a point outside it is an *excursion* and
does not, so a step that nobody accepted keeps being reported instead of becoming the
new normal by itself.
Once the series is outside its band, the band is kept as it was (the noise of a new
level must not widen it) and only a point in its inner half ends the excursion, so
that the lower tail of a new level cannot leak in a point at a time and drag the
reference up to itself.  The verdict is that of the newest point, so a single
new run is judged at once.

Why a median and differences: one slow run among twenty (a noisy neighbour, a cold file
system) moves a mean and a standard deviation far more than a median and the spread of
successive differences; this is the ReFrame-style reference derived by hand ("the
monthly median") made robust.  On pure noise the newest run falls outside the band in
well under 1 % of series (``tests/unit/test_baseline.py`` checks a seeded batch).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from runners.analysis.series import SERIES_KEYS
from runners.analysis.stats import noise_level

if TYPE_CHECKING:
    import pandas as pd

#: Defaults of :func:`walk`: points in the band, its width in noise sigmas, fewest points.
WINDOW, K_SIGMA, MIN_POINTS, MIN_EFFECT = 20, 3.5, 5, 0.02


@dataclass(frozen=True)
class Band:
    """The reference of a series and the verdict on its newest point.

    Attributes
    ----------
    status : str
        ``regression``, ``improvement``, ``no change`` or ``not enough data``.
    median, low, high : float
        The reference and its band (NaN with too few accepted points).
    n_reference : int
        Accepted points the band was computed from (at most ``window``).
    first_excursion : int or None
        Position of the first point of the newest run of consecutive excursions.
    last_accepted : int or None
        Position of the last accepted point before it.
    latest : float
        Median of the trailing excursions, else the newest point.
    n_latest : int
        The trailing excursions counted (1 when the newest point is in the band).
    """

    status: str
    median: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n_reference: int = 0
    first_excursion: int | None = None
    last_accepted: int | None = None
    latest: float = math.nan
    n_latest: int = 0

    @property
    def effect(self) -> float:
        """``(latest - median) / |median|``; NaN without a reference."""
        if not math.isfinite(self.median) or self.median == 0.0:
            return math.nan
        return (self.latest - self.median) / abs(self.median)


@functools.lru_cache(maxsize=256)
def widening(k: float, n: int) -> float:
    """The band's half-width in noise sigmas for ``n`` reference points: ``k`` sigmas of
    normal noise, as the same tail quantile of Student's t with ``n - 1`` degrees of
    freedom times ``sqrt(1 + 1/n)`` (a prediction interval for one new point)."""
    from scipy import stats

    return float(stats.t.ppf(stats.norm.cdf(k), max(n - 1, 1)) * math.sqrt(1 + 1 / n))


def half_width(sigma: float, median: float, n: int, k: float, min_effect: float) -> float:
    """Half the band: ``widening(k, n)`` noise sigmas learnt from ``n`` points, at least
    ``min_effect × |median|``."""
    return max(widening(k, n) * sigma, min_effect * abs(median))


def recent_noise(x: np.ndarray, span: int) -> list[float]:
    """``noise_level(x[max(0, i - span):i])`` for every ``i`` (vectorised where the span
    is full; the short ones and those where the MAD of differences is 0 one by one)."""
    n = x.size
    out = [0.0] * n
    full = span + 1
    if n > full:
        from numpy.lib.stride_tricks import sliding_window_view

        d = sliding_window_view(np.diff(x), span - 1)[: n - span]   # diffs of x[i-span:i]
        dev = np.abs(d - np.median(d, axis=1, keepdims=True))
        sig = 1.4826 * np.median(dev, axis=1) / math.sqrt(2.0)
        tiny = 1e-9 * np.maximum(np.abs(sliding_window_view(x, span)[: n - span]).max(axis=1),
                                 1e-300)
        for j, (s, t) in enumerate(zip(sig.tolist(), tiny.tolist(), strict=True)):
            out[j + span] = s if s > t else noise_level(x[j : j + span])
    for i in range(min(n, full)):
        out[i] = noise_level(x[max(0, i - span) : i])
    return out


def walk(values: Sequence[float], direction: str = "lower", *, window: int = WINDOW,
         k: float = K_SIGMA, min_points: int = MIN_POINTS,
         min_effect: float = MIN_EFFECT) -> Band:
    """Walk a series oldest first, learning its reference, and judge its newest point.

    Parameters
    ----------
    values : sequence of float
        The series since its newest accepted step, oldest first, finite.
    direction : {"lower", "higher"}
        Which way is better.
    window, k, min_points, min_effect : int, float, int, float
        The band is computed from the last ``window`` accepted points, once there are
        ``min_points`` of them; see :func:`half_width`.  The noise is
        :func:`runners.analysis.stats.noise_level` of the ``2 × window`` points before,
        excursions included: it is read from successive differences, which a step barely
        touches, so points the band left out cannot make the next band narrower.

    Returns
    -------
    Band
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    x = np.asarray(values, dtype=np.float64)
    sigmas = recent_noise(x, 2 * window)
    accepted: list[float] = []
    ordered: list[float] = []           # the last ``window`` accepted points, sorted
    last_in: int | None = None
    first_out: int | None = None
    band = (math.nan, math.nan, math.nan)
    for i, value in enumerate(x.tolist()):
        if len(accepted) >= min_points:
            if first_out is None:  # the band stays as it was during a run of excursions
                m = len(ordered)
                median = ordered[m // 2] if m % 2 else (ordered[m // 2 - 1]
                                                        + ordered[m // 2]) / 2
                half = half_width(sigmas[i], median, m, k, min_effect)
                band = (median, median - half, median + half)
            # During a run of excursions only the inner half of the band ends it: else
            # the lower tail of a new level would leak in one point at a time and drag
            # the reference up to it.
            inside = abs(value - median) <= (half if first_out is None else half / 2)
            if not inside:
                first_out = i if first_out is None else first_out
                continue
        accepted.append(value)
        bisect.insort(ordered, value)
        if len(ordered) > window:
            ordered.pop(bisect.bisect_left(ordered, accepted[-window - 1]))
        last_in, first_out = i, None
    if len(accepted) < min_points or not len(values):
        return Band("not enough data", n_reference=len(accepted), latest=float(values[-1])
                    if len(values) else math.nan, n_latest=1 if len(values) else 0)
    n_ref = min(len(accepted), window)
    if first_out is None:
        return Band("no change", *band, n_reference=n_ref, last_accepted=last_in,
                    latest=float(values[-1]), n_latest=1)
    trail = np.asarray(values[first_out:], dtype=np.float64)
    latest = float(np.median(trail))
    worse = latest > band[0] if direction == "lower" else latest < band[0]
    return Band("regression" if worse else "improvement", *band, n_reference=n_ref,
                first_excursion=first_out, last_accepted=last_in, latest=latest,
                n_latest=int(trail.size))


def reference_frame(long: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """Judge every series of a long table against its reference band.

    Parameters
    ----------
    long : pandas.DataFrame
        Rows of :func:`runners.analysis.series.series_frame` ordered by start time,
        normally cut to each series' newest accepted step
        (:func:`runners.analysis.annotations.since_accepted`).
    **options
        ``window``, ``k``, ``min_points``, ``min_effect`` of :func:`walk`.

    Returns
    -------
    pandas.DataFrame
        One row per series with the columns of
        :func:`runners.analysis.series.regress_frame` (``baseline_median`` is the
        reference, ``latest_median`` the newest level, ``run_id_before``/``_after`` the
        last accepted run and the first of the excursion), plus ``band_low``,
        ``band_high`` and ``reference_from`` (the oldest run the history starts at).
    """
    import pandas as pd

    keys = list(SERIES_KEYS)
    rows: list[dict[str, Any]] = []
    for key, group in long.groupby(keys, sort=True):
        values = group["value"].to_numpy(dtype=np.float64)
        direction = str(group["direction"].iloc[-1])
        band = walk(values, direction, **options)
        runs, commits = group["run_id"].to_numpy(), group["commit"].to_numpy()
        times = group["start_time"].to_numpy()
        lo, hi = band.last_accepted, band.first_excursion

        def at(labels: Any, pos: int | None) -> Any:
            return None if pos is None else labels[pos]

        reason = (f"{band.n_latest} point(s) outside the reference {band.median:.6g} "
                  f"[{band.low:.6g}, {band.high:.6g}] of {band.n_reference} accepted points"
                  if hi is not None else
                  f"newest {band.latest:.6g} within the reference {band.median:.6g} "
                  f"[{band.low:.6g}, {band.high:.6g}]" if band.status == "no change" else
                  f"{band.n_reference} accepted points, need "
                  f"{options.get('min_points', MIN_POINTS)}")
        rows.append({
            **dict(zip(keys, key, strict=True)), "n_points": int(values.size),
            "status": band.status, "direction": direction, "effect": band.effect,
            "p_value": math.nan, "baseline_median": band.median,
            "latest_median": band.latest, "n_baseline": band.n_reference,
            "n_latest": band.n_latest, "step_detected": hi is not None,
            "index_before": lo if hi is not None else None, "index_after": hi,
            "commit_before": at(commits, lo) if hi is not None else None,
            "commit_after": at(commits, hi), "run_id_before": at(runs, lo) if hi is not None
            else None, "run_id_after": at(runs, hi), "outliers": (), "reason": reason,
            "time_before": at(times, lo) if hi is not None else None,
            "time_after": at(times, hi), "newest_run_id": runs[-1], "newest_time": times[-1],
            "band_low": band.low, "band_high": band.high, "reference_from": runs[0],
        })
    columns = [*keys, "n_points", "status", "direction", "effect", "p_value",
               "baseline_median", "latest_median", "n_baseline", "n_latest",
               "step_detected", "index_before", "index_after", "commit_before",
               "commit_after", "run_id_before", "run_id_after", "outliers", "reason",
               "time_before", "time_after", "newest_run_id", "newest_time", "band_low",
               "band_high", "reference_from"]
    return pd.DataFrame(rows, columns=columns)


def agree(reference: Sequence[float], reruns: Sequence[float], direction: str,
          change: float, alpha: float = 0.05) -> tuple[bool, str]:
    """Whether confirmation reruns reproduce a suspected regression, and how.

    The reruns agree when their median is worse than the reference median by at least
    half the suspected ``change`` and, with three reruns or more, a Mann-Whitney test of
    the reruns against the reference gives ``p < alpha``; with fewer, every rerun must be
    that much worse on its own (one or two points cannot make a test significant).

    Parameters
    ----------
    reference : sequence of float
        The points of the level before the suspected step.
    reruns : sequence of float
        The metric of each rerun that finished.
    direction : {"lower", "higher"}
        Which way is better.
    change : float
        The suspected relative change (signed, as ``effect``).
    alpha : float
        Significance level.

    Returns
    -------
    tuple of (bool, str)
        The answer and one line of evidence.
    """
    from runners.analysis.stats import mann_whitney_u

    base = float(np.median(np.asarray(reference, dtype=np.float64)))
    x = np.asarray(reruns, dtype=np.float64)
    if x.size == 0 or base == 0.0:
        return False, "no rerun finished" if x.size == 0 else "reference median is 0"
    sign = 1.0 if direction == "lower" else -1.0
    need = abs(change) / 2
    worse = sign * (x - base) / abs(base)
    median_change = (float(np.median(x)) - base) / abs(base)
    text = (f"{x.size} rerun(s): median {float(np.median(x)):.6g} vs reference {base:.6g} "
            f"({median_change:+.1%}, suspected {change:+.1%})")
    if x.size >= 3:
        p = mann_whitney_u(x, np.asarray(reference, dtype=np.float64)).p_value
        ok = bool(sign * median_change >= need and p < alpha)
        return ok, f"{text}, p={p:.3g}"
    ok = bool((worse >= need).all())
    return ok, f"{text}, {int((worse >= need).sum())} of {x.size} at least {need:.1%} worse"
