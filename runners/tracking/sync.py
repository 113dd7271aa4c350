"""``bench sync``'s work: replay the spool's journals against the tracking server, each
exactly once (see :mod:`runners.tracking.spool` for the journal and how exactly-once holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.errors import one_line
from runners.tracking.driver import driver_alive
from runners.tracking.replay import Replayer
from runners.tracking.spool import JOURNAL, STATE, SYNCED, Spool, pending, read_journal, repair


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


def sync(root: str | Path, connect: Callable[[str], Replayer], uri: str | None = None,
         progress: Callable[[str], None] | None = None, foreign: bool = False) -> SyncReport:
    """Replay every pending journal against its tracking server, exactly once.

    Parameters
    ----------
    root : path
        The spool directory.
    connect : callable
        ``connect(uri)`` returns a :class:`runners.tracking.replay.Replayer` (one per URI).
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
    replayers: dict[str, Replayer] = {}
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
                if target not in replayers:
                    replayers[target] = connect(target)
                server_id = replay(directory, ops, replayers[target], ids)
            except Exception as exc:
                report.failed.append((local, one_line(exc, 10000)))
                continue
            ids[local] = server_id
            (base / SYNCED).mkdir(exist_ok=True)
            os.replace(directory, base / SYNCED / local)
            report.uploaded.append((local, server_id))
        if progress is not None:
            progress(local)
    return report


def replay(directory: Path, ops: list[dict[str, Any]], replayer: Replayer,
           ids: Mapping[str, str]) -> str:
    """Apply a journal's operations not applied yet; return the server's run id."""
    state = load_state(directory)
    resumed = state["done"] > 0
    if state["run_id"] is None:
        head = ops[0]
        if head["op"] == "attach":
            state["run_id"] = head["run_id"]
        else:   # a sync that died between creating the run and saving its state
            state["run_id"] = replayer.find_spooled(head["experiment"], directory.name)
            if state["run_id"] is not None:     # its params may not all have been logged
                replayer.apply_spooled(state["run_id"], {"op": "params",
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
            state["run_id"] = replayer.create_spooled(op["experiment"], op["run_name"],
                                                     op["time"], op["params"],
                                                     {**tags, "spool.id": directory.name})
        elif op["op"] != "attach":
            replayer.apply_spooled(state["run_id"], op, directory, dedup=resumed)
        resumed = False
        state["done"] = i + 1
        save_state(directory, state)
    return str(state["run_id"])
