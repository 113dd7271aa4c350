"""The spool: runs recorded in a local journal while the tracking server cannot be reached.

When a remote tracking server does not answer, :class:`runners.tracking.tracker.Tracker`
hands every further call to a :class:`Spool` (a :class:`runners.tracking.writer.RunWriter`),
and the run goes on.  Each run gets a directory
``<spool>/<id>/`` holding ``journal.jsonl`` (one JSON operation per line, flushed and
synced as it is written) and copies of its artifacts.  ``bench sync`` replays journals
against the server later (:func:`runners.tracking.sync.sync`); each journal is replayed
exactly once:

* a lock per journal keeps two syncs apart;
* ``state.json`` records the server's run id and how many operations were applied, after
  each one, so an interrupted sync resumes where it stopped;
* a run created by a sync that died before writing its state is found again by its
  ``spool.id`` tag;
* a finished journal moves to ``<spool>/synced/``.

Operations: ``create`` (a run that never reached the server), ``attach`` (a run the server
has, whose calls failed from some point on), ``params``, ``metrics``, ``tags``, ``artifact``,
``artifact_dir`` and ``end``.  Metric points keep the time they were logged, and runs keep
their start and end times, so a synced run looks like one logged online.  Nothing here
imports MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runners.tracking.driver import driver_tags
from runners.tracking.writer import Point, now_ms

JOURNAL = "journal.jsonl"
STATE = "state.json"
SYNCED = "synced"


class Spool:
    """Journals of runs: a :class:`runners.tracking.writer.RunWriter` that needs no server.

    Parameters
    ----------
    root : path
        The spool directory (made on first write).
    uri : str
        The tracking server the runs are meant for (``bench sync`` uploads there).
    """

    def __init__(self, root: str | Path, uri: str) -> None:
        self.root = Path(root)
        self.uri = uri
        self.runs: set[str] = set()        # runs journaled by this process

    def path(self, run_id: str) -> Path:
        """The journal directory of a run."""
        return self.root / run_id

    def has_journal(self, run_id: str) -> bool:
        """Whether a run has a journal waiting for ``bench sync`` here."""
        return (self.path(run_id) / JOURNAL).is_file()

    def _write(self, run_id: str, op: dict[str, Any]) -> None:
        if run_id not in self.runs:        # a run the server has: attach to it
            self.runs.add(run_id)
            self._append(run_id, {"op": "attach", "uri": self.uri, "run_id": run_id,
                                  "time": now_ms(), "driver": driver_tags()})
        self._append(run_id, op)

    def _append(self, run_id: str, op: dict[str, Any]) -> None:
        directory = self.path(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / JOURNAL, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(op) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def experiment_id(self, name: str) -> str:
        """A stand-in id (the server assigns the real one at sync)."""
        return f"spool:{name}"

    def start_run(self, experiment: str, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Journal a new run; return its local id (32 hex digits, like MLflow's)."""
        run_id = uuid.uuid4().hex
        all_tags = {k: str(v) for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags["mlflow.runName"] = run_name
        self.runs.add(run_id)
        self._append(run_id, {"op": "create", "uri": self.uri, "experiment": experiment,
                              "run_name": run_name, "time": now_ms(),
                              "params": {k: str(v) for k, v in params.items()},
                              "tags": all_tags, "driver": driver_tags()})
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Journal params (of a run the server created before it stopped answering)."""
        if params:
            self._write(run_id, {"op": "params", "params": {k: str(v) for k, v in
                                                            params.items()}})

    def log_points(self, run_id: str, points: Iterable[Point],
                   stamp: int | None = None) -> None:
        """Journal ``(name, value, step)`` points, stamped ``stamp`` (default: now)."""
        stamp = now_ms() if stamp is None else stamp
        rows = [[k, float(v), stamp, int(s)] for k, v, s in points]
        if rows:
            self._write(run_id, {"op": "metrics", "points": rows})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Journal tags."""
        if tags:
            self._write(run_id, {"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def _copy_dir(self, run_id: str) -> Path:
        target = self.path(run_id) / "artifacts" / uuid.uuid4().hex[:12]
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def log_artifacts(self, run_id: str, paths: Iterable[str], artifact_path: str) -> None:
        """Copy files into the journal (missing ones are skipped) and journal them."""
        for path in paths:
            if os.path.isfile(path):
                target = self._copy_dir(run_id)
                target.mkdir()
                shutil.copy2(path, target / os.path.basename(path))
                rel = (target / os.path.basename(path)).relative_to(self.path(run_id))
                self._write(run_id, {"op": "artifact", "file": str(rel),
                                     "artifact_path": artifact_path})

    def log_dir(self, run_id: str, directory: str, artifact_path: str) -> None:
        """Copy a directory tree into the journal and journal it."""
        if os.path.isdir(directory):
            target = self._copy_dir(run_id)
            shutil.copytree(directory, target)
            self._write(run_id, {"op": "artifact_dir",
                                 "dir": str(target.relative_to(self.path(run_id))),
                                 "artifact_path": artifact_path})

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Journal the run's end (the tracker ends a run once)."""
        self._write(run_id, {"op": "end", "status": status, "time": now_ms()})

    def finished_run(self, experiment: str, config_hash: str) -> str | None:
        """Unknown while offline: nothing counts as done."""
        return None

    def running_runs(self, experiment: str) -> list[tuple[str, dict[str, str]]]:
        """Unknown while offline (stale journals are closed by ``bench sync``)."""
        return []


def read_journal(directory: Path) -> list[dict[str, Any]]:
    """The operations of a journal; a torn last line (a killed writer) is left out."""
    ops = []
    lines = (directory / JOURNAL).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        try:
            ops.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise ValueError(f"{directory / JOURNAL}: line {i + 1} is not JSON") from None
    return ops


def repair(directory: Path) -> None:
    """Cut a torn last line (its writer was killed mid-write) off a journal, so that more
    operations can follow it."""
    path = directory / JOURNAL
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def pending(root: str | Path) -> list[Path]:
    """Journal directories not yet synced, oldest first."""
    base = Path(root)
    if not base.is_dir():
        return []
    found = [d for d in base.iterdir() if d.name != SYNCED and (d / JOURNAL).is_file()]
    return sorted(found, key=lambda d: (_first_time(d), d.name))


def _first_time(directory: Path) -> int:
    """When a journal's run started (0 when its first line is unreadable)."""
    try:
        with open(directory / JOURNAL, encoding="utf-8") as fh:
            return int(json.loads(fh.readline()).get("time", 0))
    except (ValueError, OSError):
        return 0
