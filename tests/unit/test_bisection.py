"""How ``bench bisect`` judges the ends and the commits between them."""

from __future__ import annotations

import pytest

from runners.analysis.bisection import classify, judge_step, level


def test_a_step_reproduces_when_every_bad_trial_is_worse_by_enough() -> None:
    step = judge_step([1.00, 1.01, 1.02], [1.30, 1.31, 1.29])
    assert step.reproduces and step.p_value == pytest.approx(0.1)
    assert step.good == 1.01 and step.bad == 1.30 and step.change == pytest.approx(0.2871, 1e-3)


def test_a_small_change_overlapping_trials_or_an_improvement_is_no_step() -> None:
    small = judge_step([1.00, 1.01, 1.02], [1.03, 1.04, 1.05])
    assert not small.reproduces and "at least 5%" in small.why
    overlap = judge_step([1.0, 1.5, 1.2], [1.3, 1.1, 1.6])
    assert not overlap.reproduces and "overlap" in overlap.why
    better = judge_step([2.0, 2.1, 2.2], [1.0, 1.1, 1.2])
    assert not better.reproduces and "better" in better.why
    # ... unless higher is better: then the drop is the regression
    assert judge_step([2.0, 2.1, 2.2], [1.0, 1.1, 1.2], direction="higher").reproduces


def test_single_values_are_judged_by_the_effect_alone() -> None:
    step = judge_step([1.0], [1.2])
    assert step.reproduces and step.p_value is None
    assert not judge_step([1.0], [1.2], min_effect=0.5).reproduces


def test_a_commit_is_bad_from_halfway_along_the_step() -> None:
    assert classify(1.49, 1.0, 2.0) == ("good", pytest.approx(0.49))
    assert classify(1.5, 1.0, 2.0)[0] == "bad"
    assert classify(4.0, 5.0, 3.0) == ("bad", 0.5)      # higher is better: a drop
    assert level([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError, match="same level"):
        classify(1.0, 2.0, 2.0)
