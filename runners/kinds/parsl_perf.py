"""``parsl-perf`` (seed 002): the installed Parsl's throughput benchmark against a Parsl
config, either the one built from the machine (written as a ``fresh_config()`` module) or
the user's own config module, as ``parsl-perf --config FILE`` takes it."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runners.config.schema import BenchConfig
from runners.errors import ConfigError, one_line
from runners.kinds.base import Kind, Merit, Prepared, Submit, done
from runners.stages.base import StageResult
from runners.stages.output import Output
from runners.stages.results import Result, ResultParseError, file_tail, iter_lines
from runners.stages.trial import TrialCommand

PERF_ITERATION = re.compile(r"^==== Iteration (\d+) ====")
PERF_FIELDS = {
    "tasks": (re.compile(r"^Will run (\d+) tasks"), "", "higher"),
    "submit_tasks_per_s": (re.compile(r"^Submission took [\d.]+ seconds = ([\d.]+) tasks/second"),
                           "tasks/s", "higher"),
    "runtime_s": (re.compile(r"^Runtime: actual ([\d.]+)s"), "s", "lower"),
    "tasks_per_s": (re.compile(r"^Tasks per second: ([\d.]+)"), "tasks/s", "higher"),
}


@dataclass
class ParslPerfBench(BenchConfig):
    """The installed Parsl's ``parsl-perf``: against the machine's Parsl config, or against
    ``parsl_config``, a config module of the user's (exposing ``fresh_config()`` or
    ``config``)."""

    name: str = "parsl_perf"
    kind: str = "parsl_perf"
    env: str = ""
    ranks: Any = 1
    trials: Any = 1
    time: float = 10.0
    iterate: str = "estimate"
    argsize: int = 0
    parsl_config: str = ""


class ParslPerf(Kind):
    """parsl-perf runs in the driver and starts its own Parsl from the config module."""

    name = "parsl_perf"
    schema = ParslPerfBench
    own_parsl = True

    def validate(self) -> None:
        """--time, --iterate, and the user's config module (it must load)."""
        bench = self.bench
        if float(bench.time) <= 0:
            raise ConfigError(f"bench.time={bench.time} must be > 0 seconds per iteration")
        it = str(bench.iterate)
        if it not in ("estimate", "exponential") and not re.fullmatch(r"\d+(,\d+)*", it):
            raise ConfigError(f"bench.iterate={it!r} is not valid; give estimate, exponential "
                              "or task counts such as '100,1000'")
        if bench.parsl_config:
            load_config(str(bench.parsl_config))

    def hashed(self, bench: dict[str, Any]) -> dict[str, Any]:
        """Without ``parsl_config`` while unset (it came later), so series keep their hash."""
        return {k: v for k, v in bench.items() if k != "parsl_config" or v}

    def params(self) -> dict[str, str]:
        """The executor and provider settings of the config parsl-perf runs against (a
        config that cannot be built is said in ``parsl.config.error``: parsl-perf will fail
        on it and the run with it)."""
        try:
            if self.bench.parsl_config:
                config = load_config(str(self.bench.parsl_config))
            else:
                import parsl_configs

                config = parsl_configs.build(self.cfg.machine, "runinfo", self.cfg.fs.name)
        except Exception as exc:     # noqa: BLE001 - a user's module: any error is theirs
            return {"parsl.config.error": one_line(exc)}
        return describe(config)

    def prepare(self, submit: Submit, out_dir: Path) -> Prepared:
        """The config module: the user's, or the machine's written under the run's folder."""
        if self.bench.parsl_config:
            module = Path(str(self.bench.parsl_config)).resolve()
        else:
            from parsl_configs.module import write_config_module

            module = write_config_module(self.cfg.machine, self.cfg.fs.name, out_dir)
        return Prepared([], done(StageResult("prepare", 0.0, logs=[str(module)],
                                             data={"env_dir": str(module)})))

    def commands(self, env_dir: str) -> list[TrialCommand]:
        """``parsl-perf --config <module> --time … --iterate … --argsize …``."""
        bench = self.bench
        argv = (str(Path(sys.executable).with_name("parsl-perf")), "--config", env_dir,
                "--time", str(bench.time), "--iterate", str(bench.iterate),
                "--argsize", str(int(bench.argsize)))
        return [TrialCommand(argv, Output(parse=parse_parsl_perf_file))]

    def xlabel(self) -> str:
        """Each step is one of parsl-perf's iterations."""
        return "iteration"

    def merits(self, results: Sequence[dict[str, Any]]) -> list[Merit]:
        """The last iteration's rate; the per-iteration figures are diagnostics."""
        return [Merit("tasks_per_s_final", "tasks/s", "higher")]

    def plan(self, out_dir: Path) -> list[str]:
        """Which config module parsl-perf loads."""
        if self.bench.parsl_config:
            return [f"prepare use the Parsl config module {self.bench.parsl_config}"]
        return [f"prepare write {out_dir}/parsl_config_{self.cfg.machine.name}.py "
                "(fresh_config())"]


def load_config(path: str) -> Any:
    """The Parsl Config of a config module (``fresh_config()``, else ``config``); the
    module runs once per process (validation and the run's params share it).

    Raises
    ------
    ConfigError
        When the file is missing, fails to import, or exposes neither.
    """
    file = Path(path).expanduser().resolve()
    return _load_config(str(file), file.stat().st_mtime_ns if file.is_file() else 0, path)


@cache
def _load_config(file_name: str, mtime: int, path: str) -> Any:
    """:func:`load_config` of a resolved file at a modification time."""
    file = Path(file_name)
    if not file.is_file() or file.suffix != ".py":
        raise ConfigError(f"bench.parsl_config={path!r} is not a Python file; give a Parsl "
                          "config module exposing fresh_config() or config")
    spec = importlib.util.spec_from_file_location(f"bench_parsl_config_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"bench.parsl_config={path!r} cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        config = module.fresh_config() if hasattr(module, "fresh_config") else \
            getattr(module, "config", None)
    except Exception as exc:       # noqa: BLE001 - a user's module: any error is theirs
        raise ConfigError(f"bench.parsl_config={path!r} failed to load: "
                          f"{one_line(exc)}") from None
    if config is None or not hasattr(config, "executors"):
        raise ConfigError(f"bench.parsl_config={path!r} exposes neither fresh_config() nor a "
                          "Parsl Config named config, as parsl-perf --config needs")
    return config


def _settings(obj: Any, prefix: str) -> dict[str, str]:
    """``prefix.class`` and every scalar constructor argument an object keeps (Parsl's
    RepresentationMixin convention: an argument is kept under its own name)."""
    out = {f"{prefix}.class": type(obj).__name__}
    for name in inspect.signature(type(obj).__init__).parameters:
        value = getattr(obj, name, None) if name != "self" else None
        if isinstance(value, str | int | float | bool) and name not in ("worker_init",):
            out[f"{prefix}.{name}"] = str(value)
    return out


def describe(config: Any) -> dict[str, str]:
    """Params naming a Parsl Config's executors and their providers and launchers."""
    out: dict[str, str] = {}
    for executor in config.executors:
        prefix = f"parsl.executor.{executor.label}"
        out.update(_settings(executor, prefix))
        provider = getattr(executor, "provider", None)
        if provider is not None:
            out.update(_settings(provider, f"{prefix}.provider"))
            launcher = getattr(provider, "launcher", None)
            if launcher is not None:
                out[f"{prefix}.provider.launcher"] = type(launcher).__name__
    return out


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
    return _perf_results(text.splitlines(), lambda: text[-300:])


def parse_parsl_perf_file(path: Path) -> list[Result]:
    """:func:`parse_parsl_perf` on a stdout file, streamed line by line."""
    return _perf_results((head for head, _ in iter_lines(path, 4096)), lambda: file_tail(path))


def _perf_results(lines: Iterable[str], ending: Callable[[], str]) -> list[Result]:
    """The results in parsl-perf's output lines; ``ending()`` gives its end for an error."""
    out: list[Result] = []
    iteration = 0
    for raw in lines:
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
        raise ResultParseError(ending(), "no 'Tasks per second' line in parsl-perf output")
    out.append(Result("tasks_per_s_final", rates[-1].value, "tasks/s", "higher"))
    return out


KIND = ParslPerf
