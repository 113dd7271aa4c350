"""The spool: runs recorded in a local journal while the tracking server cannot be reached.

When a remote tracking server does not answer, :class:`runners.tracking.Tracker` hands
every further call to a :class:`Spool`, and the run goes on.  Each run gets a directory
``<spool>/<id>/`` holding ``journal.jsonl`` (one JSON operation per line, flushed and
synced as it is written) and copies of its artifacts.  ``bench sync`` replays journals
against the server later (:func:`sync`); each journal is replayed exactly once:

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

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"
STATE = "state.json"
SYNCED = "synced"


def now_ms() -> int:
    """Milliseconds since the epoch (MLflow's time unit)."""
    return int(time.time() * 1000)


class Spool:
    """Journals of runs, with the write interface of :class:`runners.tracking.Tracker`.

    Parameters
    ----------
    root : path
        The spool directory (made on first write).
    uri : str
        The tracking server the runs are meant for (``bench sync`` uploads there).
    closed : set of str, optional
        Runs already ended (shared with the Tracker, so a run it closed online is not
        changed here afterwards).
    """

    def __init__(self, root: str | Path, uri: str, closed: set[str] | None = None) -> None:
        self.root = Path(root)
        self.uri = uri
        self.runs: set[str] = set()        # runs journaled by this process
        self.closed = closed if closed is not None else set()   # shared with the Tracker

    def path(self, run_id: str) -> Path:
        """The journal directory of a run."""
        return self.root / run_id

    def has_journal(self, run_id: str) -> bool:
        """Whether a run has a journal waiting for ``bench sync`` here."""
        return (self.path(run_id) / JOURNAL).is_file()

    def _write(self, run_id: str, op: dict[str, Any]) -> None:
        if run_id not in self.runs:        # a run the server has: attach to it
            self.runs.add(run_id)
            from runners.resume import driver_tags

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
        from runners.resume import driver_tags

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

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Journal metrics at one step."""
        self.log_points(run_id, ((k, float(v), step) for k, v in metrics.items()))

    def log_points(self, run_id: str, points: Iterable[tuple[str, float, int]],
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
        """Journal the run's end."""
        if run_id in self.closed:
            return
        self._write(run_id, {"op": "end", "status": status, "time": now_ms()})
        self.closed.add(run_id)

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


def load_state(directory: Path) -> dict[str, Any]:
    """A journal's sync progress: ``{"run_id": server id or None, "done": n}``."""
    path = directory / STATE
    if path.is_file():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    return {"run_id": None, "done": 0}


def save_state(directory: Path, state: Mapping[str, Any]) -> None:
    """Write the progress atomically (write, fsync, rename)."""
    tmp = directory / (STATE + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(dict(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / STATE)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[bool | None]:
    """Hold a journal's lock (non-blocking).  Yields True when held, False when another
    process holds it, None when the journal is gone (another sync uploaded and moved it)."""
    try:
        fh = open(directory / ".lock", "a")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        yield None
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:    # moved to synced/ between listing and locking: not ours any more
            yield True if (directory / JOURNAL).is_file() else None
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class SyncReport:
    """What a sync did, per journal."""

    uploaded: list[tuple[str, str]] = field(default_factory=list)   # (local id, server id)
    closed_stale: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (local id, why)
    failed: list[tuple[str, str]] = field(default_factory=list)     # (local id, why)


def close_if_stale(directory: Path, ops: list[dict[str, Any]], foreign: bool = False) -> str:
    """``open`` (its driver lives), ``ended``, or ``closed``: a journal whose driver is gone
    from this host gets an ``end`` KILLED with ``failure.kind=driver_killed`` appended.

    A driver on another host cannot be checked: its journal stays open unless ``foreign``
    (the user says those drivers are gone).
    """
    from runners.resume import driver_alive

    if any(op["op"] == "end" for op in ops):
        return "ended"
    alive = driver_alive(dict(ops[0].get("driver", {})))
    if alive or (alive is None and not foreign):
        return "open"
    repair(directory)
    spool = Spool(directory.parent, str(ops[0].get("uri", "")))
    spool.runs.add(directory.name)
    spool.set_tags(directory.name, {
        "failure.stage": "driver", "failure.kind": "driver_killed",
        "failure.message": "the driver process was gone when the spool was synced"})
    spool.end_run(directory.name, "KILLED")
    ops += read_journal(directory)[len(ops):]
    return "closed"


def _created_offline(directory: Path) -> bool:
    """Whether a pending journal holds a run the server does not know yet (``create``)."""
    if not (directory / JOURNAL).is_file():
        return False
    ops = read_journal(directory)
    return bool(ops) and ops[0]["op"] == "create"


def server_ids(root: Path) -> dict[str, str]:
    """Local run id → server run id, for every journal already (partly) synced."""
    out: dict[str, str] = {}
    for state in [*root.glob(f"*/{STATE}"), *root.glob(f"{SYNCED}/*/{STATE}")]:
        run_id = json.loads(state.read_text()).get("run_id")
        if run_id:
            out[state.parent.name] = str(run_id)
    return out


def sync(root: str | Path, connect: Callable[[str], Any], uri: str | None = None,
         progress: Callable[[str], None] | None = None, foreign: bool = False) -> SyncReport:
    """Replay every pending journal against its tracking server, exactly once.

    Parameters
    ----------
    root : path
        The spool directory.
    connect : callable
        ``connect(uri)`` returns a :class:`runners.tracking.Tracker` (one per URI).
    uri : str, optional
        Upload here instead of the server each journal was meant for.
    progress : callable, optional
        Called with each journal's id as it is done.
    foreign : bool
        Close (KILLED) unfinished journals whose driver ran on another host.

    Returns
    -------
    SyncReport
    """
    base = Path(root)
    report = SyncReport()
    trackers: dict[str, Any] = {}
    ids = server_ids(base)
    for directory in pending(base):
        local = directory.name
        with locked(directory) as mine:
            if mine is None:
                continue
            if not mine:
                report.skipped.append((local, "another sync holds it"))
                continue
            ops = read_journal(directory)
            if not ops:
                continue
            state = close_if_stale(directory, ops, foreign)
            if state == "open":
                report.skipped.append((local, "its driver is still running (or ran on "
                                       "another host: see --foreign)"))
                continue
            if state == "closed":
                report.closed_stale.append(local)
            parent = str(ops[0].get("tags", {}).get("mlflow.parentRunId", ""))
            if parent and parent not in ids and _created_offline(base / parent):
                report.skipped.append((local, f"its parent run {parent} is not synced yet"))
                continue
            target = uri or str(ops[0].get("uri", ""))
            try:
                if target not in trackers:
                    trackers[target] = connect(target)
                server_id = replay(directory, ops, trackers[target], ids)
            except Exception as exc:
                report.failed.append((local, " ".join(f"{type(exc).__name__}: {exc}".split())))
                continue
            ids[local] = server_id
            (base / SYNCED).mkdir(exist_ok=True)
            os.replace(directory, base / SYNCED / local)
            report.uploaded.append((local, server_id))
        if progress is not None:
            progress(local)
    return report


def replay(directory: Path, ops: list[dict[str, Any]], tracker: Any,
           ids: Mapping[str, str]) -> str:
    """Apply a journal's operations not applied yet; return the server's run id."""
    state = load_state(directory)
    resumed = state["done"] > 0
    if state["run_id"] is None:
        head = ops[0]
        if head["op"] == "attach":
            state["run_id"] = head["run_id"]
        else:   # a sync that died between creating the run and saving its state
            state["run_id"] = tracker.find_spooled(head["experiment"], directory.name)
            if state["run_id"] is not None:     # its params may not all have been logged
                tracker.apply_spooled(state["run_id"], {"op": "params",
                                                        "params": head["params"]}, directory)
                resumed = True
        if state["run_id"] is not None:
            state["done"] = max(int(state["done"]), 1)
            save_state(directory, state)
    for i in range(int(state["done"]), len(ops)):
        op = ops[i]
        if op["op"] == "create":
            tags = {k: ids.get(v, v) if k == "mlflow.parentRunId" else v
                    for k, v in op["tags"].items()}
            state["run_id"] = tracker.create_spooled(op["experiment"], op["run_name"],
                                                     op["time"], op["params"],
                                                     {**tags, "spool.id": directory.name})
        elif op["op"] != "attach":
            tracker.apply_spooled(state["run_id"], op, directory, dedup=resumed)
        resumed = False
        state["done"] = i + 1
        save_state(directory, state)
    return str(state["run_id"])
