"""The benchmark output contract: one JSON object per line on stdout.

Every benchmark program (``runners/benches/*``, or a user's own command) prints its
results as JSON lines of this form::

    {"name": "latency", "value": 1.27, "unit": "us", "direction": "lower",
     "step": 1024, "tags": {"rank": 0}}

``name`` (str) and ``value`` (number) are required.  ``unit`` (str, default ``""``),
``direction`` (``"lower"`` or ``"higher"`` is better, default ``"lower"``), ``step``
(int, e.g. a message size or a rank) and ``tags`` (an object of str → scalar) are optional.
Lines that do not start with ``{`` are ignored (a program may print other text);
a line that starts with ``{`` but is not a valid result is an error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

DIRECTIONS = ("lower", "higher")


class ResultParseError(ValueError):
    """A result line that does not follow the contract.

    Parameters
    ----------
    line : str
        The offending line (kept whole, for the failure message).
    reason : str
        What is wrong with it.
    """

    def __init__(self, line: str, reason: str) -> None:
        super().__init__(f"{reason}: {line[:300]!r}")
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultParseError, (self.line, self.reason))


@dataclass(frozen=True)
class Result:
    """One measured value, as a benchmark program reported it."""

    name: str
    value: float
    unit: str = ""
    direction: str = "lower"
    step: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise back to one contract line."""
        out: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit,
                               "direction": self.direction}
        if self.step is not None:
            out["step"] = self.step
        if self.tags:
            out["tags"] = self.tags
        return json.dumps(out)


def parse_line(line: str) -> Result:
    """Parse one contract line.

    Parameters
    ----------
    line : str
        A line starting with ``{``.

    Returns
    -------
    Result

    Raises
    ------
    ResultParseError
        When the line is not JSON or misses/mistypes a field.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ResultParseError(line, f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ResultParseError(line, "a result line must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ResultParseError(line, "'name' must be a non-empty string")
    value = obj.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultParseError(line, "'value' must be a finite number")
    unit = obj.get("unit", "")
    if not isinstance(unit, str):
        raise ResultParseError(line, "'unit' must be a string")
    direction = obj.get("direction", "lower")
    if direction not in DIRECTIONS:
        raise ResultParseError(line, "'direction' must be 'lower' or 'higher'")
    step = obj.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ResultParseError(line, "'step' must be an integer")
    tags = obj.get("tags", {})
    if not isinstance(tags, dict):
        raise ResultParseError(line, "'tags' must be an object")
    return Result(name, float(value), unit, direction, step, dict(tags))


def parse_output(text: str, require: bool = True) -> list[Result]:
    """Parse every result line in a program's stdout.

    Parameters
    ----------
    text : str
        The whole stdout.
    require : bool
        Raise when no result line is found at all.

    Returns
    -------
    list of Result
    """
    results = [parse_line(s) for s in (raw.strip() for raw in text.splitlines())
               if s.startswith("{")]
    if require and not results:
        raise ResultParseError(text[-300:], "no JSON result lines in the output")
    return results


PERF_ITERATION = re.compile(r"^==== Iteration (\d+) ====")
PERF_FIELDS = {
    "tasks": (re.compile(r"^Will run (\d+) tasks"), "", "higher"),
    "submit_tasks_per_s": (re.compile(r"^Submission took [\d.]+ seconds = ([\d.]+) tasks/second"),
                           "tasks/s", "higher"),
    "runtime_s": (re.compile(r"^Runtime: actual ([\d.]+)s"), "s", "lower"),
    "tasks_per_s": (re.compile(r"^Tasks per second: ([\d.]+)"), "tasks/s", "higher"),
}


def parse_parsl_perf(text: str) -> list[Result]:
    """Turn ``parsl-perf`` output into results: per iteration (step) and the final rate.

    Parameters
    ----------
    text : str
        parsl-perf's stdout (``==== Iteration N ====`` blocks).

    Returns
    -------
    list of Result
        ``tasks``, ``submit_tasks_per_s``, ``runtime_s`` and ``tasks_per_s`` with
        ``step`` = iteration, plus ``tasks_per_s_final`` (the last iteration's rate).
    """
    out: list[Result] = []
    iteration = 0
    for raw in text.splitlines():
        line = raw.strip()
        m = PERF_ITERATION.match(line)
        if m:
            iteration = int(m.group(1))
            continue
        for name, (pattern, unit, direction) in PERF_FIELDS.items():
            m = pattern.match(line)
            if m and iteration:
                out.append(Result(name, float(m.group(1)), unit, direction, iteration))
    rates = [r for r in out if r.name == "tasks_per_s"]
    if not rates:
        raise ResultParseError(text[-300:], "no 'Tasks per second' line in parsl-perf output")
    out.append(Result("tasks_per_s_final", rates[-1].value, "tasks/s", "higher"))
    return out
