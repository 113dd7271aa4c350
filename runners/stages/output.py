"""How one command's output becomes results: JSON lines (the output contract, the default),
figures of merit taken by declared patterns, or a kind's own parser; plus sanity patterns.

Declared patterns are ReFrame's ``perf_patterns`` and Ramble's figures of merit as data:
each :class:`MetricRule` is a regular expression searched in every line of the output,
whose named group ``value`` is the figure (and ``step``, if present, its step, e.g. a
message size); each :class:`SanityRule` must be found (or, with ``absent``, must never
be).  Lines are read as a stream (:func:`runners.stages.results.iter_lines`), so an output
of any size costs bounded memory.  An :class:`Output` is plain data: it travels to the
Parsl worker with the trial.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runners.stages.results import (
    RESULT_LINE_LIMIT,
    Result,
    ResultParseError,
    iter_lines,
    parse_file,
)


class SanityError(ValueError):
    """The output failed a sanity pattern (a required line missing, a forbidden one found)."""


@dataclass(frozen=True)
class MetricRule:
    """A figure of merit read from text: ``pattern`` has a ``value`` group (and maybe ``step``).

    Parameters
    ----------
    name : str
        The metric's name.
    pattern : str
        A regular expression searched in each line; ``(?P<value>...)`` is the number,
        ``(?P<step>...)`` (optional) an integer step.
    unit : str
        Its unit.
    direction : str
        ``lower`` or ``higher`` is better.
    """

    name: str
    pattern: str
    unit: str = ""
    direction: str = "lower"


@dataclass(frozen=True)
class SanityRule:
    """A line that must be found in the output (``absent=False``) or must never be."""

    pattern: str
    absent: bool = False


def check_pattern(pattern: str, what: str, groups: tuple[str, ...] = ()) -> re.Pattern[str]:
    """Compile a declared pattern; raise ValueError with one line when it cannot serve.

    Parameters
    ----------
    pattern : str
        The regular expression.
    what : str
        Names it in the message (e.g. ``bench.metrics[0].pattern``).
    groups : tuple of str
        Named groups it must have (``value`` for a metric).
    """
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}={pattern!r} is not a regular expression ({exc}); e.g. "
                         r"'^\s*(?P<step>\d+)\s+(?P<value>[\d.]+)$'") from None
    missing = [g for g in groups if g not in compiled.groupindex]
    if missing:
        raise ValueError(f"{what}={pattern!r} has no named group {missing[0]!r}; mark the "
                         f"figure with (?P<{missing[0]}>...), e.g. "
                         r"'Latency: (?P<value>[\d.]+) us'")
    return compiled


@dataclass(frozen=True)
class Output:
    """How one command's stdout is read.

    Parameters
    ----------
    json : bool
        Results are JSON lines (the output contract); False: declared patterns.
    metrics : tuple of MetricRule
        Declared patterns (``json=False``); each must match at least once.
    sanity : tuple of SanityRule
        Checked on every output, whichever way it is parsed.
    parse : callable, optional
        A kind's own parser of the stdout file (e.g. parsl-perf's text), instead of both;
        a module-level function, so that it can be sent to a worker.
    """

    json: bool = True
    metrics: tuple[MetricRule, ...] = ()
    sanity: tuple[SanityRule, ...] = ()
    parse: Callable[[Path], list[Result]] | None = None

    def read(self, stdout: str | Path) -> list[Result]:
        """The results in a stdout file.

        Raises
        ------
        ResultParseError
            A malformed result line, no result at all, or a metric pattern that never matched.
        SanityError
            A sanity pattern not found, or a forbidden one found.
        """
        if self.sanity:
            check_sanity(stdout, self.sanity)
        if self.parse is not None:
            return self.parse(Path(stdout))
        if self.json:
            return parse_file(stdout)
        return read_patterns(stdout, self.metrics)


def check_sanity(stdout: str | Path, rules: tuple[SanityRule, ...]) -> None:
    """Raise SanityError unless every required pattern is found and no forbidden one is."""
    compiled = [(rule, re.compile(rule.pattern)) for rule in rules]
    found: set[int] = set()
    for head, _ in iter_lines(stdout, RESULT_LINE_LIMIT):
        line = head.rstrip("\r\n")
        for i, (rule, regex) in enumerate(compiled):
            if regex.search(line):
                if rule.absent:
                    raise SanityError(f"forbidden pattern {rule.pattern!r} found: {line[:200]!r}")
                found.add(i)
    missing = [rule.pattern for i, (rule, _) in enumerate(compiled)
               if not rule.absent and i not in found]
    if missing:
        raise SanityError(f"expected pattern {missing[0]!r} not found in the output")


def read_patterns(stdout: str | Path, rules: tuple[MetricRule, ...]) -> list[Result]:
    """Every match of every metric rule, in output order, as results.

    Raises
    ------
    ResultParseError
        When a rule never matched, or its ``value``/``step`` is not a number.
    """
    compiled = [(rule, re.compile(rule.pattern)) for rule in rules]
    results: list[Result] = []
    seen: set[str] = set()
    for head, _ in iter_lines(stdout, RESULT_LINE_LIMIT):
        line = head.rstrip("\r\n")
        for rule, regex in compiled:
            m = regex.search(line)
            if m is None:
                continue
            try:
                value = float(m.group("value"))
                raw_step = m.groupdict().get("step")
                step = None if raw_step is None else int(raw_step)
                if not math.isfinite(value):
                    raise ValueError(value)
            except (TypeError, ValueError):
                raise ResultParseError(line, f"metric {rule.name!r}: the matched value or "
                                       "step is not a finite number") from None
            results.append(Result(rule.name, value, rule.unit, rule.direction, step))
            seen.add(rule.name)
    never = [rule for rule in rules if rule.name not in seen]
    if never:
        raise ResultParseError(never[0].pattern, f"the pattern of metric {never[0].name!r} "
                               "never matched the output")
    return results
