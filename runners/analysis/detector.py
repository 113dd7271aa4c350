"""The two-window test behind :func:`runners.analysis.regress.judge` (pure functions).

A change between a baseline window and a latest window needs three things: a two-sided
Mann-Whitney ``p < alpha``, a relative change of the medians of at least a *threshold*,
and both still true with the most extreme latest point left out.

The threshold is noise-aware: ``max(floor, noise_factor * noise)``, ``noise`` being the
series' own noise standard deviation (:func:`~runners.analysis.stats.noise_level`, from
first differences, so a step barely moves it) relative to the baseline median.

Why this rule, measured with ``benchmarks/detector_accuracy.py`` (20 baseline points, a
step up, 500 seeded series per cell; ``benchmarks/results/detector_accuracy.md``):

- A fixed minimum effect (5 % before) is wrong at both ends: with 1 % noise a 3 % step
  is 3 sigmas and plain, yet never flagged (0 %, now 82-99 %); at 2 % noise a 5 % step
  was a coin flip (21-45 %, now 62-95 %).  Scaling with the noise makes the threshold
  mean the same thing at every noise level.
- ``noise_factor = 1.25``: on pure noise the rank test, the step penalty and the
  leave-one-out check already stop most alarms (windows picked after looking at the
  data are what lets the others through); 1 sigma lets through 1.5 % at 30 points,
  1.25 sigmas 0.4-1.4 % (the fixed 5 % let through 1.4 % at 5 % noise).  At 10 points
  it is 1.2-2.0 % (the noise estimate from 9 differences is uncertain; the old rule
  had 1.4-1.8 % at 5 and 10 % noise) and 2 sigmas only bring it to 1.1 % at a large
  cost in recall.  Recall at 2 % noise: 7.5 % steps with 5 points after 100 %.
- ``floor = 1 %``: below it a change is rarely worth anyone's time even when it is
  statistically plain (a near-noiseless series), and quantized timers make a smaller
  one suspicious.
- At 5 % noise the threshold is about what it was (6.25 % vs 5 %): what limits recall
  there is finding the step.  A 10 % step (2 sigmas) with 10 points after is found
  79 % of the time (82 % before); a lower step penalty finds more but doubles the false
  alarms.  With 3 points after, the penalty rarely accepts the step and the last-5
  fallback window mixes in 2 baseline points; :func:`fallback_windows` therefore also
  tries the last ``min_points`` alone, which takes 20 % steps at 5 % noise from 83 % to
  92 % at no measurable cost in false alarms.
- Most false alarms on pure noise came from *detected* steps: the step search puts the
  split where the two sides differ most, so a plain rank test there is far too willing
  (post-selection).  A detected step is therefore tested at ``alpha / 10``
  (:data:`STEP_ALPHA_DIVISOR`); a real step of a few noise sigmas has p far below that.
  False alarms of 10-point series went from 1.2-2.0 % to 0.5-0.9 %.  A step of
  :data:`PLAIN_STEP` times the minimum effect or more keeps the plain ``alpha``: 4
  points against 6 cannot reach p < 0.005 however far apart they are, and a 50 % step
  in a 10-point history must still be found.
- A 10 % step at 5 % noise with 10 points after was missed 21 % of the time because the
  step search did not accept it and the last-5 window held half of it:
  :func:`longer_windows` also tries the last 10, 20, 40 ... points, each at
  ``alpha / 5`` with the minimum effect scaled to the smaller scatter of longer medians,
  which takes that cell from 77-79 % to 93 %.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from runners.analysis.stats import mann_whitney_u

DEFAULT_FLOOR = 0.01
"""Smallest relative change of the medians ever called a change (``min_effect``)."""
STEP_ALPHA_DIVISOR = 10
"""A detected step is tested at ``alpha`` divided by this: the step search put the split
where the two sides differ most, which makes a plain test there far too willing."""
PLAIN_STEP = 3.0
"""A detected step this many times the minimum effect is tested at the plain ``alpha``."""
SCAN_ALPHA_DIVISOR = 5
"""Longer fallback windows are tested at ``alpha`` divided by this."""
MAX_SCAN = 80
"""The longest fallback window tried (points)."""
DEFAULT_NOISE_FACTOR = 1.25
"""The minimum effect is at least this many noise standard deviations (relative)."""


class Comparison(NamedTuple):
    """The outcome of :func:`compare_windows`.

    ``kind`` is "change", "hinges" (a change only with the most extreme latest point)
    or "none"; ``effect`` the relative change of the medians, ``p`` the two-sided
    Mann-Whitney p-value, ``threshold`` the minimum effect that applied.
    """

    kind: str
    effect: float
    p: float
    m_base: float
    m_new: float
    threshold: float


def relative_change(after: float, before: float) -> float:
    """``(after - before) / |before|``; ``±inf`` (0 if both are 0) when ``before == 0``."""
    if before == 0.0:
        return 0.0 if after == 0.0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def relative_noise(sigma: float, level: float) -> float:
    """``sigma / |level|``: the noise as a fraction of the level (``inf`` at level 0)."""
    if sigma == 0.0:
        return 0.0
    return math.inf if level == 0.0 else sigma / abs(level)


def effect_threshold(sigma: float, level: float, floor: float = DEFAULT_FLOOR,
                     noise_factor: float = DEFAULT_NOISE_FACTOR) -> float:
    """The minimum relative effect at noise ``sigma`` around ``level``.

    Parameters
    ----------
    sigma : float
        Noise standard deviation of the series, in its units.
    level : float
        The baseline level (median) the change is relative to.
    floor, noise_factor : float
        The threshold is ``max(floor, noise_factor * sigma / |level|)``; with
        ``noise_factor = 0`` it is the fixed ``floor``.

    Returns
    -------
    float
        The threshold (``inf`` when the level is 0 and there is noise).
    """
    if noise_factor == 0.0:
        return floor
    return max(floor, noise_factor * relative_noise(sigma, level))


def compare_windows(base: np.ndarray, new: np.ndarray, alpha: float, sigma: float,
                    floor: float = DEFAULT_FLOOR,
                    noise_factor: float = DEFAULT_NOISE_FACTOR) -> Comparison:
    """Whether ``new`` differs from ``base`` (see the module docstring).

    Parameters
    ----------
    base, new : numpy.ndarray
        The baseline and latest windows (1-D, finite, non-empty).
    alpha : float
        Significance level of the Mann-Whitney test.
    sigma : float
        Noise standard deviation of the series (absolute).
    floor, noise_factor : float
        See :func:`effect_threshold`.

    Returns
    -------
    Comparison
    """
    m_base, m_new = float(np.median(base)), float(np.median(new))
    effect = relative_change(m_new, m_base)
    threshold = effect_threshold(sigma, m_base, floor, noise_factor)
    p = mann_whitney_u(new, base).p_value
    if p >= alpha or abs(effect) < threshold or new.size < 2:
        return Comparison("none", effect, p, m_base, m_new, threshold)
    rest = np.delete(new, np.argmax(new) if effect > 0 else np.argmin(new))
    e_rest = relative_change(float(np.median(rest)), m_base)
    p_rest = mann_whitney_u(rest, base).p_value
    if p_rest >= alpha or e_rest * math.copysign(1.0, effect) < threshold:
        return Comparison("hinges", effect, p, m_base, m_new, threshold)
    return Comparison("change", effect, p, m_base, m_new, threshold)


def compare_at_step(base: np.ndarray, new: np.ndarray, alpha: float, sigma: float,
                    floor: float = DEFAULT_FLOOR,
                    noise_factor: float = DEFAULT_NOISE_FACTOR) -> Comparison:
    """:func:`compare_windows` of the two sides of a detected step.

    At ``alpha / STEP_ALPHA_DIVISOR`` (the split was chosen where the sides differ most),
    unless the change is at least :data:`PLAIN_STEP` times the minimum effect: so large a
    step is no chance split of noise, and short windows (4 points against 6) cannot
    reach so small a p-value at all.  With ``noise_factor=0`` (the old rule), at ``alpha``.
    """
    if noise_factor == 0.0:
        return compare_windows(base, new, alpha, sigma, floor, noise_factor)
    strict = compare_windows(base, new, alpha / STEP_ALPHA_DIVISOR, sigma, floor,
                             noise_factor)
    if strict.kind == "change" or abs(strict.effect) < PLAIN_STEP * strict.threshold:
        return strict
    return compare_windows(base, new, alpha, sigma, floor, noise_factor)


def fallback_windows(
    x: np.ndarray, latest: int, baseline: int | None, min_points: int, alpha: float,
    sigma: float, floor: float = DEFAULT_FLOOR, noise_factor: float = DEFAULT_NOISE_FACTOR,
) -> tuple[np.ndarray, np.ndarray, Comparison | None]:
    """The windows when no detected step is a change, and their comparison.

    The last ``latest`` points against the points before them (the first ``baseline``
    if given).  When that is no change, the last ``min_points`` alone are tried too: a
    step followed by only ``min_points`` points is otherwise diluted by the baseline
    points in the latest window (at 5 % noise, 77 % of the missed 20 % steps with 3 points
    after).  Their median scatters ``sqrt(latest / min_points)`` times more, so their
    minimum effect is that much higher, which keeps the false alarms where they were.
    Not with ``noise_factor=0`` (the fixed minimum effect of before, as it was).

    Returns
    -------
    tuple
        ``(baseline window, latest window, comparison)``; the comparison is None when a
        window has fewer than ``min_points`` points.
    """
    def split(size: int) -> tuple[np.ndarray, np.ndarray]:
        at = max(x.size - size, 1)
        return x[: at if baseline is None else min(at, baseline)], x[at:]

    base, new = split(latest)
    if base.size < min_points or new.size < min_points:
        return base, new, None
    outcome = compare_windows(base, new, alpha, sigma, floor, noise_factor)
    if outcome.kind == "change" or latest <= min_points or noise_factor == 0.0:
        return base, new, outcome
    short_base, short_new = split(min_points)
    factor = noise_factor * math.sqrt(latest / min_points)
    m_base = float(np.median(short_base))
    effect = relative_change(float(np.median(short_new)), m_base)
    if abs(effect) >= effect_threshold(sigma, m_base, floor, factor):  # cheap test first
        short = compare_windows(short_base, short_new, alpha, sigma, floor, factor)
        if short.kind == "change":
            return short_base, short_new, short
    return longer_windows(x, latest, baseline, min_points, alpha, sigma, floor,
                          noise_factor, (base, new, outcome))


def longer_windows(
    x: np.ndarray, latest: int, baseline: int | None, min_points: int, alpha: float,
    sigma: float, floor: float, noise_factor: float,
    found: tuple[np.ndarray, np.ndarray, Comparison | None],
) -> tuple[np.ndarray, np.ndarray, Comparison | None]:
    """Latest windows of ``2 × latest``, ``4 × latest`` ... points (while the baseline keeps
    as many), for a step the step penalty missed with more than ``latest`` points after it.

    The medians of longer windows scatter less, so the minimum effect shrinks with the
    standard error of their difference, ``sqrt(1/m + 1/b)`` against that of the last
    ``latest``; each extra window is tested at ``alpha / SCAN_ALPHA_DIVISOR`` so that trying
    several windows does not add false alarms.
    """
    n = x.size
    ref = math.sqrt(1 / latest + 1 / max(n - latest, 1))
    m = 2 * latest
    while m <= n - m and m <= MAX_SCAN:
        at = n - m
        base = x[: at if baseline is None else min(at, baseline)]
        new = x[at:]
        scale = math.sqrt(1 / m + 1 / base.size) / ref
        outcome = compare_windows(base, new, alpha / SCAN_ALPHA_DIVISOR, sigma, floor,
                                  noise_factor * scale)
        if outcome.kind == "change":
            return base, new, outcome
        m *= 2
    return found
