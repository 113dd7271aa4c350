"""Writing runs: the :class:`RunWriter` protocol, and :class:`MlflowWriter`, which writes to
MLflow by explicit run ids in batches.  The offline :class:`runners.tracking.spool.Spool`
satisfies the same protocol, so :class:`runners.tracking.tracker.Tracker` can hand a run
from one to the other when the server stops answering.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from runners.tracking.server import unreachable
from runners.tracking.store import (
    BATCH_METRICS,
    BATCH_PARAMS,
    BATCH_TAGS,
    MAX_PARAM_LEN,
    connect,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: ``(metric name, value, step)``.
Point = tuple[str, float, int]
#: The experiment tag that makes the MLflow UI open an experiment in its model-training view.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


class RunWriter(Protocol):
    """What a run is written through: MLflow online, or the spool's journal offline."""

    def experiment_id(self, name: str) -> str:
        """Get or create an experiment by name."""

    def start_run(self, experiment: str, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Open a RUNNING run with its params and tags; return its id."""

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log params."""

    def log_points(self, run_id: str, points: Iterable[Point],
                   stamp: int | None = None) -> None:
        """Log metric points, all stamped ``stamp`` (milliseconds; default: now)."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags."""

    def log_artifacts(self, run_id: str, paths: Iterable[str], artifact_path: str) -> None:
        """Upload files (missing ones are skipped) under ``artifact_path``."""

    def log_dir(self, run_id: str, directory: str, artifact_path: str) -> None:
        """Upload a directory tree."""

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run with FINISHED, FAILED or KILLED."""

    def finished_run(self, experiment: str, config_hash: str) -> str | None:
        """The newest FINISHED run with this ``config.hash`` tag, if known."""

    def running_runs(self, experiment: str) -> list[tuple[str, dict[str, str]]]:
        """``(run_id, tags)`` of every RUNNING run of an experiment, if known."""


class Lost(Exception):
    """The server stopped answering part-way through a call.

    Parameters
    ----------
    cause : BaseException
        The error of the call that failed.
    rest : callable
        Finishes the call on another writer (the spool): only what the server did not get.
    """

    def __init__(self, cause: BaseException, rest: Callable[[RunWriter], Any]) -> None:
        super().__init__(str(cause))
        self.cause, self.rest = cause, rest


def now_ms() -> int:
    """Milliseconds since the epoch (MLflow's time unit)."""
    return int(time.time() * 1000)


class MlflowWriter:
    """A :class:`RunWriter` on an MLflow store.

    Parameters
    ----------
    uri : str
        The tracking URI.
    artifact_root : str
        Local directory for artifacts of new experiments ('' = the server's default).
    spools : bool
        A batch that failed because the server could not be reached raises :class:`Lost`
        (the rest goes to a spool); False: the error itself (``bench sync``, ``import``).
    """

    def __init__(self, uri: str, artifact_root: str = "", spools: bool = True) -> None:
        self.uri, self.artifact_root, self.spools = uri, artifact_root, spools
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}

    @property
    def client(self) -> MlflowClient:
        """The MlflowClient, made on first use."""
        if self._client is None:
            self._client = connect(self.uri)
        return self._client

    def experiment_id(self, name: str) -> str:
        """Get or create an experiment by name (remembered: a sweep asks once per job).

        Every experiment is tagged :data:`EXPERIMENT_KIND` (also one made before), so the
        MLflow UI treats it as model development (runs, charts, comparison), not GenAI.
        """
        if name in self._experiments:
            return self._experiments[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if self.artifact_root:
                location = (Path(self.artifact_root) / name).resolve().as_uri()
            try:
                self._experiments[name] = str(self.client.create_experiment(
                    name, artifact_location=location, tags=dict([EXPERIMENT_KIND])))
                return self._experiments[name]
            except Exception:
                exp = self.client.get_experiment_by_name(name)   # created concurrently
                if exp is None:
                    raise
        key, value = EXPERIMENT_KIND
        if exp.tags.get(key) != value:
            self.client.set_experiment_tag(exp.experiment_id, key, value)
        self._experiments[name] = str(exp.experiment_id)
        return self._experiments[name]

    def start_run(self, experiment: str, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Open a RUNNING run with its params and tags; return its id."""
        all_tags = {k: str(v)[:MAX_PARAM_LEN] for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags["mlflow.runName"] = run_name
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name,
                                     tags=all_tags)
        run_id = str(run.info.run_id)
        try:
            self.log_params(run_id, params)
        except Lost as lost:    # the server has the run: the rest of its params go elsewhere
            rest = lost.rest
            raise Lost(lost.cause, lambda writer: (rest(writer), run_id)[1]) from None
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log params in batches; :class:`Lost` carries the batches the server missed."""
        from mlflow.entities import Param

        items = [(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), BATCH_PARAMS):
            try:
                self.client.log_batch(run_id, params=[Param(k, v) for k, v in
                                                      items[i:i + BATCH_PARAMS]])
            except Exception as exc:
                rest = dict(items[i:])
                self._lost(exc, lambda w: w.log_params(run_id, rest))  # noqa: B023 - raises

    def log_points(self, run_id: str, points: Iterable[Point],
                   stamp: int | None = None) -> None:
        """Log ``(name, value, step)`` points in batches, all with one timestamp;
        :class:`Lost` carries the batches the server missed, with the same timestamp."""
        from mlflow.entities import Metric

        when = now_ms() if stamp is None else stamp
        batch = [Metric(k, float(v), when, int(s)) for k, v, s in points]
        for i in range(0, len(batch), BATCH_METRICS):
            try:
                self.client.log_batch(run_id, metrics=batch[i:i + BATCH_METRICS])
            except Exception as exc:
                rest = [(m.key, m.value, m.step) for m in batch[i:]]
                self._lost(exc, lambda w: w.log_points(run_id, rest, when))  # noqa: B023

    def _lost(self, exc: Exception, rest: Callable[[RunWriter], Any]) -> NoReturn:
        """Re-raise a failed batch: as :class:`Lost` with ``rest`` (the batches not written,
        bound now: this raises at once) when the server could not be reached and a spool
        may take over (``spools``), else as it is."""
        if self.spools and unreachable(exc):
            raise Lost(exc, rest) from None
        raise exc

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set many tags, in batches."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_PARAM_LEN]) for k, v in tags.items()]
        for i in range(0, len(items), BATCH_TAGS):
            self.client.log_batch(run_id, tags=items[i:i + BATCH_TAGS])

    def log_artifacts(self, run_id: str, paths: Iterable[str], artifact_path: str) -> None:
        """Upload files (missing ones are skipped) under ``artifact_path``."""
        for path in paths:
            if os.path.isfile(path):
                self.client.log_artifact(run_id, path, artifact_path)

    def log_dir(self, run_id: str, directory: str, artifact_path: str) -> None:
        """Upload a directory tree."""
        if os.path.isdir(directory):
            self.client.log_artifacts(run_id, directory, artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run with FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status=status)

    def finished_run(self, experiment: str, config_hash: str) -> str | None:
        """The newest FINISHED run of an experiment with this ``config.hash`` tag, if any."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.client.search_runs(
            [exp.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.`config.hash` = '{config_hash}' "
                          "and attributes.status = 'FINISHED'")
        return str(runs[0].info.run_id) if runs else None

    def running_runs(self, experiment: str) -> list[tuple[str, dict[str, str]]]:
        """``(run_id, tags)`` of every run of an experiment that is still RUNNING."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], max_results=10000,
                                       filter_string="attributes.status = 'RUNNING'")
        return [(str(r.info.run_id), dict(r.data.tags)) for r in runs]
