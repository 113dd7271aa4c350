"""Curves: results that carry a ``step`` (message size, rank, iteration), summarised over
trials at each step.  Pure functions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from runners.analysis.stats import summarize


def step_points(per_trial: list[list[dict[str, Any]]],
                skip: tuple[str, ...] = ()) -> list[tuple[str, float, int]]:
    """``(metric, value, step)`` points: the median over trials at each step, and its spread.

    Parameters
    ----------
    per_trial : list of list of dict
        Each trial's parsed result lines (``name``, ``value``, ``step`` ...).
    skip : tuple of str
        Result names to leave out.

    Returns
    -------
    list of (name, value, step)
        ``name`` (the median), ``name.min``, ``name.max``, ``name.mean``, ``name.std`` and
        ``name.cv`` at every step, so the MLflow UI draws the curve.
    """
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for results in per_trial:
        for r in results:
            if r.get("step") is not None and r["name"] not in skip:
                values[(str(r["name"]), int(r["step"]))].append(float(r["value"]))
    points: list[tuple[str, float, int]] = []
    for (name, step), vals in sorted(values.items()):
        s = summarize(vals)
        points.append((name, s["median"], step))
        points += [(f"{name}.{k}", s[k], step) for k in ("min", "max", "mean", "std", "cv")]
    return points


def directions(per_trial: list[list[dict[str, Any]]]) -> dict[str, str]:
    """``{name: "lower"|"higher"}`` for every result name (the benchmark's own definition)."""
    return {str(r["name"]): str(r.get("direction", "lower")) for rs in per_trial for r in rs}


def units(per_trial: list[list[dict[str, Any]]]) -> dict[str, str]:
    """``{name: unit}`` for every result name."""
    return {str(r["name"]): str(r.get("unit", "")) for rs in per_trial for r in rs}


def result_rows(trial: int, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows (trial, name, step, value, unit, direction, tags) for the results CSV."""
    import json

    return [{"trial": trial, "name": r["name"], "step": r.get("step"), "value": r["value"],
             "unit": r.get("unit", ""), "direction": r.get("direction", "lower"),
             "tags": json.dumps(r.get("tags", {}), sort_keys=True)} for r in results]
