"""The tracker: how the driver writes a run.  Everything is redacted first, then written
online (:class:`runners.tracking.writer.MlflowWriter`) or, once a remote tracking server
stopped answering, journaled (:class:`runners.tracking.spool.Spool`): both are
:class:`runners.tracking.writer.RunWriter`.

Runs are addressed by explicit run ids (no fluent global state) and logged in batches.
A run is opened before the first stage (status RUNNING) and always closed with a status,
once: a closed run stays as it is.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from runners.errors import one_line
from runners.tracking.redact import Redactor
from runners.tracking.server import (
    SPOOL_RETRY_ENV,
    UI_ENV,
    probe,
    ui_argv,
    unreachable,
)
from runners.tracking.spool import Spool
from runners.tracking.store import is_remote
from runners.tracking.writer import Lost, MlflowWriter, Point, RunWriter

T = TypeVar("T")


class Tracker:
    """Writes runs to a store, redacted, and to the spool when the server is gone.

    Parameters
    ----------
    uri : str
        The tracking URI (``sqlite:///…/mlflow.db``, ``http://host:port``, …).
    artifact_root : str
        Local directory for artifacts of new experiments ('' = the server's default).
    spool : path, optional
        For a remote server: where runs are journaled when it cannot be reached
        (``bench sync`` uploads them later).  None: no spool, a call to an unreachable
        server raises.
    redact : iterable of str
        Patterns of secret keys added to :data:`runners.tracking.redact.SECRET_WORDS`.
        Params, tags, failure messages and text artifacts are redacted before they are
        logged or spooled.
    """

    def __init__(self, uri: str, artifact_root: str = "", spool: str | Path | None = None,
                 redact: Iterable[str] = ()) -> None:
        self.uri, self.artifact_root = uri, artifact_root
        self.redactor = Redactor(redact)
        self.lock = threading.RLock()      # a sweep's job threads share one tracker
        self.closed: set[str] = set()      # runs this tracker ended: their status is final
        self.online = MlflowWriter(uri, artifact_root)
        self.spool: Spool | None = None
        self.offline_reason: str | None = None
        if spool and is_remote(uri):
            self.spool = Spool(spool, uri)
            for key, val in SPOOL_RETRY_ENV.items():
                os.environ.setdefault(key, val)
            reason = probe(uri)
            if reason is not None:
                self.go_offline(reason)

    def go_offline(self, reason: str) -> None:
        """Send every further call to the spool, and say so once on stderr."""
        assert self.spool is not None, "only a tracker with a spool goes offline"
        self.offline_reason = reason
        print(f"warning: the tracking server {self.uri} cannot be reached ({reason}); "
              f"recording to the spool {self.spool.root} instead: upload it later with "
              "`bench sync`", file=sys.stderr)

    def _route(self, call: Callable[[RunWriter], T]) -> T:
        """``call`` on the online writer, or on the spool once the server is gone."""
        with self.lock:
            if self.spool is not None and self.offline_reason is not None:
                return call(self.spool)
            try:
                return call(self.online)
            except Lost as lost:      # part of the call reached the server: spool the rest
                if self.spool is None:
                    raise lost.cause from None
                self.go_offline(one_line(lost.cause))
                result: T = lost.rest(self.spool)
                return result
            except Exception as exc:
                if self.spool is None or not unreachable(exc):
                    raise
                self.go_offline(one_line(exc))
                return call(self.spool)

    def experiment_id(self, name: str) -> str:
        """Get or create an experiment by name."""
        return self._route(lambda w: w.experiment_id(name))

    def start_run(self, experiment: str, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Open a RUNNING run with its params and tags; return its id."""
        with self.lock:     # the redactor learns secrets as it goes: one thread at a time
            params, tags = self.redactor.mapping(params), self.redactor.mapping(tags)
            return self._route(lambda w: w.start_run(experiment, run_name, params, tags,
                                                     parent_run_id))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log many metrics at one step, in batches."""
        self.log_points(run_id, [(k, float(v), step) for k, v in metrics.items()])

    def log_points(self, run_id: str, points: Iterable[Point]) -> None:
        """Log ``(name, value, step)`` points in batches."""
        rows = list(points)
        self._route(lambda w: w.log_points(run_id, rows))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set many tags, in batches."""
        with self.lock:
            tags = self.redactor.mapping(tags)
            self._route(lambda w: w.set_tags(run_id, tags))

    def log_artifacts(self, run_id: str, paths: Iterable[str], artifact_path: str) -> None:
        """Upload files (missing ones are skipped) under ``artifact_path``; a file holding a
        secret is uploaded as a redacted copy."""
        scratch: list[str] = []
        try:
            with self.lock:
                files = self.redactor.files(list(paths), scratch)
                self._route(lambda w: w.log_artifacts(run_id, files, artifact_path))
        finally:
            for tmp in scratch:
                shutil.rmtree(tmp, ignore_errors=True)

    def log_dir(self, run_id: str, directory: str, artifact_path: str) -> None:
        """Upload a directory tree (redacted like :meth:`log_artifacts`)."""
        scratch: list[str] = []
        try:
            with self.lock:
                tree = self.redactor.directory(directory, scratch)
                self._route(lambda w: w.log_dir(run_id, tree, artifact_path))
        finally:
            for tmp in scratch:
                shutil.rmtree(tmp, ignore_errors=True)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run with FINISHED, FAILED or KILLED (once: a closed run stays as it is)."""
        with self.lock:
            if run_id in self.closed:
                return
            self._route(lambda w: w.end_run(run_id, status))
            self.closed.add(run_id)

    def fail_run(self, run_id: str, stage: str, kind: str, message: str,
                 status: str = "FAILED") -> None:
        """Close a run as FAILED (or KILLED) with its cause in ``failure.*`` tags."""
        with self.lock:
            if run_id in self.closed:
                return
            self.set_tags(run_id, {"failure.stage": stage, "failure.kind": kind,
                                   "failure.message": message})
            self.end_run(run_id, status)

    def finished_run(self, experiment: str, config_hash: str) -> str | None:
        """The newest FINISHED run with this ``config.hash`` tag (None while offline)."""
        return self._route(lambda w: w.finished_run(experiment, config_hash))

    def running_runs(self, experiment: str) -> list[tuple[str, dict[str, str]]]:
        """``(run_id, tags)`` of every RUNNING run of an experiment ([] while offline)."""
        return self._route(lambda w: w.running_runs(experiment))

    def ui_command(self) -> str:
        """The exact shell command that opens the MLflow UI on this store."""
        env = " ".join(f"{k}={v}" for k, v in UI_ENV.items())
        return f"{env} {shlex.join(ui_argv(self.uri, self.artifact_root))}"
