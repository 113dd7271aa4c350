"""How ``bench bisect`` judges commits (pure functions over per-trial values).

The ends first: the step must reproduce, i.e. the bad end's median is worse than the good
end's (in the figure of merit's direction) by at least ``min_effect`` of the good level,
and, when both ends have more than one trial, a two-sided Mann-Whitney test over their
trials gives ``p <= alpha``.  The default ``alpha = 0.1`` is the smallest p-value three
trials against three can reach (every bad trial worse than every good one), so a suite of
three trials per entry is enough.  Then each commit between them is *bad* when its median
lies at least halfway from the good level to the bad level, else *good* (``asv find``
judges by the nearer level the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from runners.analysis.stats import mann_whitney_u

#: Smallest relative change of the medians that counts as the step (5%).
MIN_EFFECT = 0.05
#: Significance level of the test of the ends over their trials.
ALPHA = 0.1


class Step(NamedTuple):
    """The step between the two ends.

    ``change`` is ``(bad - good) / |good|`` (signed); ``p_value`` is None when an end has a
    single value; ``reproduces`` says whether the bad end regressed against the good end;
    ``why`` says, when it does not, what was missing.
    """

    good: float
    bad: float
    change: float
    p_value: float | None
    reproduces: bool
    why: str


def level(samples: Sequence[float]) -> float:
    """The level of a commit: the median of its per-trial values."""
    if not samples:
        raise ValueError("a level needs at least one value")
    return float(np.median(np.asarray(samples, dtype=np.float64)))


def judge_step(good: Sequence[float], bad: Sequence[float], direction: str = "lower",
               min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> Step:
    """Whether the bad end regressed against the good end (see the module docstring).

    Parameters
    ----------
    good, bad : sequence of float
        The per-trial values measured at each end (non-empty).
    direction : {"lower", "higher"}
        Which way is better.
    min_effect : float
        Smallest relative change of the medians that counts.
    alpha : float
        Largest Mann-Whitney p-value that counts (when both ends have 2+ values).

    Returns
    -------
    Step
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    g, b = level(good), level(bad)
    change = (b - g) / abs(g) if g else (np.inf if b > g else -np.inf if b < g else 0.0)
    worse = change > 0 if direction == "lower" else change < 0
    p = mann_whitney_u(good, bad).p_value if len(good) > 1 and len(bad) > 1 else None
    why = ""
    if not worse:
        why = ("no change" if change == 0 else
               f"the bad end is better ({direction} is better)")
    elif abs(change) < min_effect:
        why = f"a step needs a change of at least {min_effect:.0%} for the worse"
    elif p is not None and p > alpha:
        why = (f"the trials overlap: Mann-Whitney p = {p:.2g} > {alpha:g} "
               f"({len(good)} and {len(bad)} trials)")
    return Step(g, b, float(change), p, not why, why)


def classify(value: float, good: float, bad: float) -> tuple[str, float]:
    """``("good" | "bad", fraction)``: a commit whose level is ``value``, judged against
    the ends' levels; ``fraction`` is how far along the step from good (0) to bad (1) it
    lies, and 0.5 or more is bad."""
    if bad == good:
        raise ValueError("the ends have the same level; there is no step to place a commit on")
    fraction = (value - good) / (bad - good)
    return ("bad" if fraction >= 0.5 else "good"), float(fraction)
