"""The store as a job queue: runs queued for a site (status SCHEDULED), claimed by one agent.

A queued run is an ordinary MLflow run with status ``SCHEDULED`` (MLflow's own status for
a run that waits) and the tag ``site=<name>``.  An agent claims it by logging the param
``site.claim.<attempt>`` with its own id.  MLflow never changes a param's value: the
params table's primary key (run, key) lets exactly one insert win, in SQLite (one writer
at a time, whatever the host) and in the PostgreSQL behind a tracking server (a unique
constraint checked inside each transaction); every other agent gets "Changing param
values is not allowed" and leaves the run alone.  The same key logged again with the same
value succeeds, so a claim retried after a lost reply is still the same agent's.
A run requeued after its agent was lost gets the next attempt number, and so a fresh key.

Agents record themselves as runs of the experiment :data:`AGENTS` (status RUNNING while
they live; the tag ``site.polled`` says when each last looked at the queue).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runners.tracking.sql import SQLITE
from runners.tracking.writer import MlflowWriter

if TYPE_CHECKING:
    from mlflow.entities import Run

QUEUED = "SCHEDULED"
#: The tag that names a run's site, and the experiment that holds the agents' records.
SITE_TAG = "site"
AGENTS = "bench-sites"
#: Terminal statuses of a run.
ENDED = ("FINISHED", "FAILED", "KILLED")


def claim_key(tags: dict[str, str]) -> str:
    """The param a claim of this attempt of a queued run logs."""
    return f"site.claim.{tags.get('site.attempt', '1')}"


def claim(writer: MlflowWriter, run_id: str, key: str, agent_id: str) -> bool:
    """Log ``key=agent_id`` on a queued run; True when this agent holds the claim.

    Raises
    ------
    Exception
        Any error other than "another agent holds it" (e.g. the server cannot be
        reached): the caller does not know, so it must not run the run.
    """
    from mlflow.exceptions import MlflowException

    try:
        writer.client.log_param(run_id, key, agent_id)
        return True
    except MlflowException as exc:
        if "Changing param values is not allowed" in str(exc):
            return False
        raise


def set_status(writer: MlflowWriter, run_id: str, status: str) -> None:
    """Set a run's status (SCHEDULED → RUNNING, or back when it is requeued)."""
    writer.client.update_run(run_id, status=status)


def queued_sqlite(uri: str, site: str, limit: int) -> list[str]:
    """Ids of SCHEDULED runs of ``site`` in a SQLite store, oldest first (a plain query:
    the agent asks every fraction of a second)."""
    con = sqlite3.connect(uri[len(SQLITE):], timeout=10)
    try:
        rows = con.execute(
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE r.status = ? AND r.lifecycle_stage = 'active' AND t.key = ? "
            "AND t.value = ? ORDER BY r.start_time LIMIT ?",
            (QUEUED, SITE_TAG, site, limit)).fetchall()
    except sqlite3.OperationalError:    # no tables yet: nothing was ever queued
        return []
    finally:
        con.close()
    return [str(r[0]) for r in rows]


def queued_runs(writer: MlflowWriter, site: str, limit: int = 100) -> list[str]:
    """Ids of the runs queued for ``site``, oldest first."""
    if writer.uri.startswith(SQLITE):
        return queued_sqlite(writer.uri, site, limit)
    client = writer.client
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    runs = client.search_runs(ids, max_results=limit, order_by=["attributes.start_time ASC"],
                              filter_string=f"attributes.status = '{QUEUED}' and "
                                            f"tags.{SITE_TAG} = '{site}'")
    return [str(r.info.run_id) for r in runs]


def site_runs(writer: MlflowWriter, site: str, experiment: str | None = None) -> list[Run]:
    """The RUNNING runs of ``site`` (in every experiment but the agents', or in
    ``experiment`` only): what a lost agent may have left."""
    client = writer.client
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        ids = [exp.experiment_id] if exp is not None else []
    else:
        ids = [e.experiment_id for e in client.search_experiments() if e.name != AGENTS]
    if not ids:
        return []
    return list(client.search_runs(ids, max_results=10000, filter_string=(
        f"attributes.status = 'RUNNING' and tags.{SITE_TAG} = '{site}'")))


def child_statuses(writer: MlflowWriter, experiment_id: str, parent_id: str,
                   only: tuple[str, ...] = (), limit: int = 10000) -> list[str]:
    """The statuses of a parent run's children (the jobs of a queued sweep); ``only``
    those with one of these statuses, at most ``limit`` of each."""
    where = f"tags.`mlflow.parentRunId` = '{parent_id}'"
    found: list[str] = []
    for status in only or ("",):
        extra = f" and attributes.status = '{status}'" if status else ""
        runs = writer.client.search_runs([experiment_id], max_results=limit,
                                         filter_string=where + extra)
        found += [str(r.info.status) for r in runs]
    return found


def queued_all(writer: MlflowWriter, limit: int = 10000) -> list[Run]:
    """Every run queued for any site, oldest first."""
    client = writer.client
    ids = [e.experiment_id for e in client.search_experiments() if e.name != AGENTS]
    if not ids:
        return []
    runs = client.search_runs(ids, max_results=limit, order_by=["attributes.start_time ASC"],
                              filter_string=f"attributes.status = '{QUEUED}'")
    return [r for r in runs if SITE_TAG in r.data.tags]


@dataclass(frozen=True)
class Brief:
    """What an agent needs to know of a run: its status, experiment and tags."""

    status: str
    experiment_id: str
    tags: dict[str, str]


def brief(writer: MlflowWriter, run_id: str) -> Brief:
    """A run's status, experiment and tags (in a SQLite store two plain queries: MLflow's
    ``get_run`` also builds every param and metric, ~10x the time)."""
    if not writer.uri.startswith(SQLITE):
        run = writer.client.get_run(run_id)
        return Brief(str(run.info.status), str(run.info.experiment_id), dict(run.data.tags))
    con = sqlite3.connect(writer.uri[len(SQLITE):], timeout=10)
    try:
        row = con.execute("SELECT status, experiment_id FROM runs WHERE run_uuid = ?",
                          (run_id,)).fetchone()
        tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?",
                                (run_id,)).fetchall())
    finally:
        con.close()
    if row is None:
        raise KeyError(f"no run {run_id} in {writer.uri}")
    return Brief(str(row[0]), str(row[1]), {str(k): str(v) for k, v in tags.items()})


def download_config(writer: MlflowWriter, run_id: str, path: Path) -> None:
    """Write a queued run's ``config/resolved.yaml`` artifact to ``path``."""
    got = writer.client.download_artifacts(run_id, "config/resolved.yaml", str(path.parent))
    if Path(got) != path:
        Path(got).replace(path)


def get_run(writer: MlflowWriter, run_id: str) -> Run:
    """A run (info, params, tags, latest metrics)."""
    return writer.client.get_run(run_id)


def agent_runs(writer: MlflowWriter, live_only: bool = True) -> list[Run]:
    """The agents' records, newest first (only RUNNING ones with ``live_only``)."""
    exp = writer.client.get_experiment_by_name(AGENTS)
    if exp is None:
        return []
    where = "attributes.status = 'RUNNING'" if live_only else ""
    return list(writer.client.search_runs([exp.experiment_id], filter_string=where,
                                          order_by=["attributes.start_time DESC"],
                                          max_results=200))


def polled_within(writer: MlflowWriter, site: str, seconds: float) -> list[Run]:
    """The live agents of ``site`` that looked at the queue in the last ``seconds``."""
    now = time.time()
    return [r for r in agent_runs(writer) if r.data.tags.get(SITE_TAG) == site
            and now - float(r.data.tags.get("site.polled", "0")) <= seconds]
