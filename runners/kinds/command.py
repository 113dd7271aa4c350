"""Any command: how a project's own benchmark plugs in, with no Python of the user's.

Results are read from the command's output either as JSON lines (the output contract,
the default) or, for programs that print text tables (OSU, STREAM, IOR, HPL, mpi4py's own
``demo/osu_*.py``), with declared ``metrics:`` patterns, as ReFrame's ``perf_patterns`` and
Ramble's figures of merit do; ``sanity:`` patterns must be found (or, ``absent: true``,
must never be) in every output::

    command: "{launch} {python} {env}/src/mpi4py/demo/osu_latency.py"
    metrics:
      - {name: latency, pattern: '^ *(?P<step>\\d+) +(?P<value>[\\d.]+)$', unit: us}
    sanity:
      - {pattern: '^# MPI Latency Test'}

A template's placeholders: ``{python}`` (the benchmark environment's interpreter, or the
runner's when ``env`` is empty), ``{env}`` (that environment), ``{launch}`` (the machine's
MPI launcher for ``ranks``), ``{ranks}``, ``{project}`` and every key of ``params``; each
value is shell-quoted and the command is split into arguments without a shell.
"""

from __future__ import annotations

import shlex
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from runners.config.schema import BenchConfig
from runners.errors import ConfigError
from runners.kinds.base import Kind, Merit
from runners.stages.output import MetricRule, Output, SanityRule, check_pattern
from runners.stages.trial import TrialCommand

#: Placeholders every template has (besides the keys of ``bench.params``).
BUILTIN = ("python", "env", "launch", "ranks", "project")


@dataclass
class MetricPattern:
    """A figure of merit taken from text output (see the module docstring)."""

    name: str = MISSING
    pattern: str = MISSING
    unit: str = ""
    direction: str = "lower"
    command: str = ""       # only this command's output (a key of bench.commands)


@dataclass
class SanityPattern:
    """A line every output must hold (or, with ``absent``, must not)."""

    pattern: str = MISSING
    absent: bool = False
    command: str = ""


@dataclass
class CommandBench(BenchConfig):
    """Any command: ``command`` (one) or ``commands`` (several, by name, run in turn)."""

    name: str = "command"
    kind: str = "command"
    env: str = ""
    command: str = ""
    commands: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricPattern] = field(default_factory=list)
    sanity: list[SanityPattern] = field(default_factory=list)
    xlabel: str = "step"


class Command(Kind):
    """A command template (or several) printing JSON result lines or text."""

    name = "command"
    schema = CommandBench

    def templates(self) -> dict[str, str]:
        """``{name: template}``: the named ``commands``, or ``command`` as ``""``."""
        named = {str(k): str(v) for k, v in (self.bench.get("commands") or {}).items()}
        return named or {"": str(self.bench.command)}

    def validate(self) -> None:
        """One of command/commands; known placeholders; patterns that compile."""
        bench = self.bench
        if bench.get("commands") and str(bench.command).strip():
            raise ConfigError("give bench.command or bench.commands, not both")
        known = {*BUILTIN, *map(str, bench.params)}
        for name, template in self.templates().items():
            key = f"bench.commands.{name}" if name else "bench.command"
            if not template.strip():
                raise ConfigError(f"{key} is empty; give a command that prints JSON result "
                                  "lines (or text with bench.metrics patterns), e.g. "
                                  f"{key}='{{python}} my_bench.py'")
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            missing = sorted(fields - known)
            if missing:
                raise ConfigError(f"{key} uses {{{missing[0]}}}, which is not a parameter; "
                                  f"add +bench.params.{missing[0]}=<value> or use one of: "
                                  f"{', '.join(sorted(known))}")
        names = set(self.templates())
        for i, rule in enumerate(bench.get("metrics") or []):
            where = f"bench.metrics[{i}]"
            if not str(rule.name).strip():
                raise ConfigError(f"{where}.name is empty; name the metric, e.g. latency")
            if rule.direction not in ("lower", "higher"):
                raise ConfigError(f"{where}.direction={rule.direction!r} is not valid; "
                                  "give lower or higher (which is better)")
            self._check_rule(where, str(rule.pattern), str(rule.command), names, ("value",))
        for i, rule in enumerate(bench.get("sanity") or []):
            self._check_rule(f"bench.sanity[{i}]", str(rule.pattern), str(rule.command),
                             names, ())

    @staticmethod
    def _check_rule(where: str, pattern: str, command: str, names: set[str],
                    groups: tuple[str, ...]) -> None:
        try:
            check_pattern(pattern, f"{where}.pattern", groups)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if command and command not in names:
            valid = ", ".join(sorted(n for n in names if n)) or "none: there is one command"
            raise ConfigError(f"{where}.command={command!r} names no command of "
                              f"bench.commands; valid: {valid}")

    def hashed(self, bench: dict[str, Any]) -> dict[str, Any]:
        """Without ``commands``, ``metrics`` and ``sanity`` while empty (they came after
        ``command``) and without ``xlabel`` (a plot label), so series keep their hash."""
        return {k: v for k, v in bench.items()
                if k != "xlabel" and not (k in ("commands", "metrics", "sanity") and not v)}

    def uses_launcher(self) -> bool:
        """When a template has ``{launch}``."""
        return any("{launch}" in t for t in self.templates().values())

    def output(self, name: str) -> Output:
        """How the output of command ``name`` is read: by the metric patterns that apply
        to it, else as JSON result lines."""
        bench = self.bench
        metrics = tuple(MetricRule(str(r.name), str(r.pattern), str(r.unit), str(r.direction))
                        for r in bench.get("metrics") or [] if r.command in ("", name))
        sanity = tuple(SanityRule(str(r.pattern), bool(r.absent))
                       for r in bench.get("sanity") or [] if r.command in ("", name))
        return Output(json=not metrics, metrics=metrics, sanity=sanity)

    def argv(self, template: str, env_dir: str) -> list[str]:
        """A template with every value shell-quoted, split without a shell."""
        bench = self.bench
        python = f"{env_dir}/bin/python" if bench.env else sys.executable
        values = {str(k): shlex.quote(str(v)) for k, v in bench.params.items()}
        values.update(python=shlex.quote(python), env=shlex.quote(env_dir),
                      project=shlex.quote(str(self.cfg.project_root)),
                      ranks=str(int(bench.ranks)))
        if "{launch}" in template:
            values["launch"] = shlex.join(self.launch(int(bench.ranks), env_dir))
        return shlex.split(template.format(**values))

    def commands(self, env_dir: str) -> list[TrialCommand]:
        """Each template, in order, with the patterns that apply to it."""
        return [TrialCommand(tuple(self.argv(t, env_dir)), self.output(name), name)
                for name, t in self.templates().items()]

    def merits(self, results: Sequence[dict[str, Any]]) -> list[Merit]:
        """The declared metric patterns, else every result the program printed."""
        declared = self.bench.get("metrics") or []
        if declared:
            merits = {str(r.name): Merit(str(r.name), str(r.unit), str(r.direction))
                      for r in declared}
            return list(merits.values())
        return super().merits(results)

    def xlabel(self) -> str:
        """``bench.xlabel``: what the step of the declared curves is."""
        return str(self.bench.get("xlabel") or "step")

    def plan(self, out_dir: Path) -> list[str]:
        """The environment, and how the output is read."""
        lines = super().plan(out_dir)
        declared = self.bench.get("metrics") or []
        if declared:
            lines.append("parse   " + "; ".join(f"{r.name} from /{r.pattern}/" for r in declared))
        return lines


KIND = Command
