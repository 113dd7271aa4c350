"""The benchmark-kind contract: everything that differs between kinds, in one class.

A kind (in the spirit of ReFrame's test classes and asv's benchmark discovery) says:

* its config schema (:attr:`Kind.schema`, a dataclass extending ``BenchConfig``);
* whether its trials launch MPI ranks (:attr:`Kind.mpi`), whether its environment is
  staged onto the chosen filesystem (:attr:`Kind.staged`), whether it runs in the driver
  with a Parsl of its own (:attr:`Kind.own_parsl`);
* :meth:`Kind.validate`: checks of its own fields (one-line ``ConfigError``);
* :meth:`Kind.prepare`: the stages it runs before the trials (build, sanity, deploy ...);
* :meth:`Kind.commands`: the commands of one trial, each with how its output is read;
* :meth:`Kind.trial_metrics`: how a trial's results become per-trial metrics;
* :meth:`Kind.merits`: its figures of merit (headline metrics, with unit and direction);
  everything else a run logs is a diagnostic;
* :meth:`Kind.plan`: the lines it adds to a dry run, and :meth:`Kind.xlabel`, the x-label
  of its curves (:attr:`Kind.plots`: whether its step results are curves at all).

Defaults any kind may keep or override: :meth:`Kind.uses_launcher` (the MPI launcher is
needed), :meth:`Kind.params` (extra params of the run), :meth:`Kind.hashed` (its part of
``config.hash``), :meth:`Kind.files` (extra result files) and :meth:`Kind.shown` (the
summary table's metrics).

Nothing outside ``runners/kinds/`` compares ``bench.kind`` to a name: the pipeline, the
validation, the dry run and the summary ask the kind.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig

from runners.config.schema import BenchConfig
from runners.stages.base import StageResult
from runners.stages.env import build_env, stage_env
from runners.stages.launch import launch_prefix, per_node_prefix
from runners.stages.trial import TrialCommand

#: The benchmark programs that run on the machine.
BENCH_DIR = Path(__file__).resolve().parent.parent / "benches"
#: Submits a stage function with its arguments (futures among them), returns its future.
Submit = Callable[..., Future[StageResult]]


@dataclass(frozen=True)
class Merit:
    """A figure of merit: a headline performance metric of a benchmark.

    ``name`` is the metric as logged: a per-trial metric (judged as ``<name>.median``) or
    a curve (judged at its last step).
    """

    name: str
    unit: str = ""
    direction: str = "lower"


@dataclass
class Prepared:
    """The stages a kind runs before its trials.

    Attributes
    ----------
    waits : list of (str, Future)
        Each stage's name and future, in order: the driver waits for them and logs each.
    ready : Future
        The future the first trial runs after; its result's ``data["env_dir"]`` is the
        environment the trial commands' ``{env}`` stands for.
    """

    waits: list[tuple[str, Future[StageResult]]] = field(default_factory=list)
    ready: Future[StageResult] = field(default_factory=Future)


def done(result: StageResult) -> Future[StageResult]:
    """A future that already holds ``result``."""
    fut: Future[StageResult] = Future()
    fut.set_result(result)
    return fut


class Kind:
    """A benchmark kind; subclass it in a module of its own (see the module docstring).

    Parameters
    ----------
    cfg : DictConfig
        The composed experiment config (``cfg.bench`` is this kind's section).
    """

    #: The name in ``bench.kind`` (entry-point and ``module:Class`` kinds may leave it '').
    name: ClassVar[str] = ""
    #: The dataclass of ``bench.*`` (registered as ``bench/<name>_schema`` in Hydra).
    schema: ClassVar[type[BenchConfig]] = BenchConfig
    #: Trials start MPI ranks through the machine's launcher.
    mpi: ClassVar[bool] = False
    #: The environment is copied onto the chosen filesystem before the trials.
    staged: ClassVar[bool] = False
    #: Trials run in the driver and start their own Parsl (no DataFlowKernel is made).
    own_parsl: ClassVar[bool] = False
    #: Draw the curves of step results (False: steps are not a curve, e.g. ranks).
    plots: ClassVar[bool] = True

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    @property
    def bench(self) -> DictConfig:
        """This kind's section of the config (``cfg.bench``)."""
        bench: DictConfig = self.cfg.bench
        return bench

    def env_spec(self) -> Path:
        """The environment spec the benchmark asks for (``envs/<bench.env>.yaml``)."""
        return Path(self.cfg.project_root) / "envs" / f"{self.bench.env}.yaml"

    def validate(self) -> None:
        """Check this kind's own fields; raise ``ConfigError`` with one line."""

    def uses_launcher(self) -> bool:
        """Whether the trials need the machine's MPI launcher."""
        return self.mpi

    def params(self) -> dict[str, str]:
        """Extra params recorded when the run is opened (besides the whole config)."""
        return {}

    def hashed(self, bench: dict[str, Any]) -> dict[str, Any]:
        """``bench`` as it enters the config hash (``config.hash``: a series' identity).

        A field added to a kind's schema later, left at its empty default, must not
        change the hash of configs that existed before it: drop it here.
        """
        return bench

    def prepare(self, submit: Submit, out_dir: Path) -> Prepared:
        """Submit the stages before the trials: build the environment (when ``bench.env``),
        then stage it onto the chosen filesystem (when :attr:`staged`)."""
        machine, logs = self.cfg.machine, out_dir / "stages"
        prepared = Prepared(ready=done(StageResult("env", 0.0, data={"env_dir": sys.prefix})))
        if self.bench.env:
            prepared.ready = submit(build_env, str(self.env_spec()), str(machine.env_root),
                                    str(logs / "env"))
            prepared.waits.append(("env", prepared.ready))
        if self.staged:
            fs = machine.filesystems[self.cfg.fs.name]
            prepared.ready = submit(stage_env, prepared.ready, str(fs.path), str(logs / "stage"),
                                    float(self.bench.timeout_s), self.per_node())
            prepared.waits.append(("stage", prepared.ready))
        return prepared

    def per_node(self) -> list[str] | None:
        """The launch prefix of one task per node when the chosen filesystem is node-local
        and the allocation has several nodes (staging and warm-up then run on each)."""
        scope = self.cfg.machine.filesystems[self.cfg.fs.name].scope
        return per_node_prefix(self.cfg.machine) if scope == "node" else None

    def launch(self, ranks: int, env_dir: str) -> list[str]:
        """The machine's MPI launch line for ``ranks`` ranks."""
        return launch_prefix(self.cfg.machine, ranks, env_dir)

    def commands(self, env_dir: str) -> list[TrialCommand]:
        """The commands of one trial (``env_dir`` may be the ``{env}`` placeholder)."""
        raise NotImplementedError(f"kind {self.name!r} has no commands()")

    def trial_metrics(self, results: Sequence[dict[str, Any]],
                      measured: dict[str, Any]) -> dict[str, float]:
        """Per-trial metrics: the psutil measurement, plus each result without a ``step``
        under its own name (results with a step are curves)."""
        out = {"total_s": float(measured["wall_s"]),
               "peak_rss_mb": float(measured["peak_rss_mb"]),
               "cpu_user_s": float(measured["cpu_user_s"]),
               "cpu_system_s": float(measured["cpu_system_s"]),
               "host_load1": float(measured["host_before"].get("load1", 0.0))}
        for r in results:
            if r.get("step") is None:
                out[str(r["name"])] = float(r["value"])
        return out

    def merits(self, results: Sequence[dict[str, Any]]) -> list[Merit]:
        """The figures of merit: by default every result the program reported (its own
        unit and direction); the psutil measurement is a diagnostic."""
        found: dict[str, Merit] = {}
        for r in results:
            name = str(r["name"])
            if name not in found:
                found[name] = Merit(name, str(r.get("unit", "")),
                                    str(r.get("direction", "lower")))
        return list(found.values())

    def files(self, results: Sequence[Sequence[dict[str, Any]]], out_dir: Path) -> list[Path]:
        """Extra result files of the run (artifact folder ``results/``)."""
        return []

    def shown(self, stats: dict[str, dict[str, float]], merits: Sequence[Merit]) -> list[str]:
        """The metrics of the summary table at the end of a run: the figures of merit
        first, then the other per-trial metrics, twelve at most."""
        first = [m.name for m in merits if m.name in stats]
        return [*first, *(k for k in stats if k not in first)][:12]

    def xlabel(self) -> str:
        """What the step of a curve is (the x-label of its plots)."""
        return "step"

    def plan(self, out_dir: Path) -> list[str]:
        """The dry run's lines for the stages before the trials."""
        lines = []
        if self.bench.env:
            import yaml

            spec = yaml.safe_load(self.env_spec().read_text()) or {}
            sources = ", ".join(map(str, spec.get("sources") or []))
            unpack = f"; unpack the sdists of {sources} in <env>/src/" if sources else ""
            lines.append(f"env     build {self.env_spec()} into {self.cfg.machine.env_root}/"
                         f"<name>-<hash> (python -m venv --copies; pip install <packages>"
                         f"{unpack}), reused when cached")
        if self.staged:
            fs = self.cfg.machine.filesystems[self.cfg.fs.name]
            copy = (f"rsync -a --delete --exclude '*.pyc' <env>/ {fs.path}/<name>-<hash>/ "
                    "(skipped when current); rewrite VIRTUAL_ENV in bin/activate")
            per_node = self.per_node()
            if per_node:
                lines.append(f"stage   on each of the {self.cfg.machine.nodes} nodes "
                             f"(fs={self.cfg.fs.name} is node-local), in parallel: "
                             f"{' '.join(per_node)} python -m runners.stages.node_copy: {copy}")
            else:
                where = "once (node-local, one node)" if fs.scope == "node" else "once (shared)"
                lines.append(f"stage   {where}: {copy}")
        return lines


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as a CSV (columns in order of first appearance); return the path."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path
