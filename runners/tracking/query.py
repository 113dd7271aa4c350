"""Reading runs: the store's experiments, and its runs as one pandas table.

A SQL store (SQLite, PostgreSQL) is read in bulk by :mod:`runners.tracking.sql`; any
other store (a tracking server) page by page through MLflow's ``search_runs``.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from runners.tracking.sql import (
    experiment_ids_sql,
    is_sql,
    runs_table_sql,
    tag_values_sql,
    wanted_keys,
)
from runners.tracking.store import connect

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: MLflow's run statuses.
STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")


class StoreReader:
    """Reads a store.

    Parameters
    ----------
    uri : str
        The tracking URI.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        """The MlflowClient, made on first use (a bulk read of a SQL store needs none)."""
        if self._client is None:
            self._client = connect(self.uri)
        return self._client

    def experiment_names(self) -> list[str]:
        """Names of all experiments in the store."""
        return sorted(e.name for e in self.client.search_experiments())

    def runs_frame(self, experiment: str, limit: int = 20) -> Any:
        """The newest runs of an experiment as a DataFrame (None if it does not exist)."""
        import pandas as pd

        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.client.search_runs([exp.experiment_id], max_results=limit,
                                       order_by=["attributes.start_time DESC"])
        rows = [{"run_id": r.info.run_id[:12], "status": r.info.status,
                 "start": pd.Timestamp(r.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
                 "machine": r.data.tags.get("machine", ""), "fs": r.data.tags.get("fs", ""),
                 "ranks": r.data.params.get("bench.ranks", ""),
                 "total_s.median": r.data.metrics.get("total_s.median"),
                 "failure": r.data.tags.get("failure.kind", "")} for r in runs]
        return pd.DataFrame(rows)

    def experiment_ids(self, names: list[str] | None = None) -> dict[str, str]:
        """``{name: experiment id}`` of the named experiments, or of all active ones.

        Parameters
        ----------
        names : list of str, optional
            Experiment names; None means every active experiment of the store.

        Returns
        -------
        dict
            Name to id, in the order of ``names`` (sorted by name for all).

        Raises
        ------
        ValueError
            When a name is not an experiment of the store; the message lists the valid names.
        """
        found: dict[str, str] = {}
        token = None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            found.update({str(e.name): str(e.experiment_id) for e in page})
            token = page.token
            if not token:
                break
        if names is None:
            return dict(sorted(found.items()))
        unknown = [n for n in names if n not in found]
        if unknown:
            valid = ", ".join(sorted(found)) or "none yet"
            raise ValueError(f"no experiment {', '.join(map(repr, unknown))}; "
                             f"experiments: {valid}")
        return {n: found[n] for n in dict.fromkeys(names)}

    def tag_values(self, key: str) -> list[str] | None:
        """The distinct values of a tag over the whole store, sorted; None when only a full
        read would tell (a store that is not a SQL database)."""
        return tag_values_sql(self.uri, key) if is_sql(self.uri) else None

    def runs_table(self, experiments: list[str] | None, status: str | None = None,
                   since_ms: int | None = None, max_runs: int = 100000,
                   bulk: bool = True, columns: Collection[str] | None = None) -> Any:
        """Runs of some experiments as a wide DataFrame, one row per run.

        A SQL store (SQLite, PostgreSQL) is read in bulk with four queries; other stores in
        pages of 1000 with ``search_runs``.  Sweep parent runs (tag ``sweep.id`` without
        ``mlflow.parentRunId``) are left out: they measure nothing themselves.

        Parameters
        ----------
        experiments : list of str or None
            Experiment names; None means every active experiment.
        status : str, optional
            Only runs with this status (``FINISHED``, ``FAILED``, ``KILLED``, ``RUNNING``,
            ``SCHEDULED``); None means any status.
        since_ms : int, optional
            Only runs started at or after this time (milliseconds since the epoch).
        max_runs : int
            At most this many runs, the newest ones.
        bulk : bool
            Read a SQL store in bulk (False: through ``search_runs``, as other stores).
        columns : collection of str, optional
            Only these ``param.``/``tag.``/``metric.`` columns, by name or ``fnmatch``
            pattern (``tag.direction.*``, ``metric.*``); None means every column.  A SQL
            store then reads only those keys (with 100,000 runs, the read costs in
            proportion to the key/value rows fetched).  The first five columns are always
            there; ``frame.attrs["stored_columns"]`` then lists every ``param.``/``tag.``/
            ``metric.`` column the store has, read or not.

        Returns
        -------
        pandas.DataFrame
            Ordered by start time, oldest first.  Columns ``run_id``, ``experiment``,
            ``status``, ``start_time`` and ``end_time`` (UTC timestamps, NaT while running),
            then ``param.<key>`` (strings), ``tag.<key>`` (strings) and ``metric.<key>``
            (the latest value of each metric, float), each group sorted by key; a run
            without a key has NaN there.

        Raises
        ------
        ValueError
            On an unknown experiment (the message lists the valid names), an unknown status
            or ``max_runs < 1``.
        """
        import pandas as pd

        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; use one of {', '.join(STATUSES)}")
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, got {max_runs}")
        if bulk and is_sql(self.uri):    # a SQL store: read it in bulk, without MLflow's ORM
            name_of = {i: n for n, i in experiment_ids_sql(self.uri, experiments).items()}
            if name_of:
                return runs_table_sql(self.uri, name_of, status, since_ms, max_runs, columns)
        ids = self.experiment_ids(experiments)
        name_of = {i: n for n, i in ids.items()}
        clauses = []
        if status is not None:
            clauses.append(f"attributes.status = '{status}'")
        if since_ms is not None:
            clauses.append(f"attributes.start_time >= {int(since_ms)}")
        rows: list[dict[str, Any]] = []
        params: set[str] = set()
        tags: set[str] = set()
        metrics: set[str] = set()
        token = None
        while ids and len(rows) < max_runs:
            page = self.client.search_runs(
                list(ids.values()), filter_string=" and ".join(clauses), max_results=1000,
                order_by=["attributes.start_time DESC"], page_token=token)
            for run in page:
                run_tags = run.data.tags
                if "sweep.id" in run_tags and "mlflow.parentRunId" not in run_tags:
                    continue
                info = run.info
                row: dict[str, Any] = {
                    "run_id": str(info.run_id),
                    "experiment": name_of.get(str(info.experiment_id), info.experiment_id),
                    "status": str(info.status), "start_time": info.start_time,
                    "end_time": info.end_time}
                row.update({f"param.{k}": v for k, v in run.data.params.items()})
                row.update({f"tag.{k}": v for k, v in run_tags.items()})
                row.update({f"metric.{k}": float(v) for k, v in run.data.metrics.items()})
                params.update(run.data.params)
                tags.update(run_tags)
                metrics.update(run.data.metrics)
                rows.append(row)
                if len(rows) >= max_runs:
                    break
            token = page.token
            if not token:
                break
        kept = {field: wanted_keys(sorted(keys), field, columns)
                for field, keys in (("param", params), ("tag", tags), ("metric", metrics))}
        names = ["run_id", "experiment", "status", "start_time", "end_time",
                 *(f"{field}.{k}" for field, keys in kept.items() for k in keys)]
        frame = pd.DataFrame.from_records(rows[::-1], columns=names)
        for col in ("start_time", "end_time"):
            frame[col] = pd.to_datetime(pd.to_numeric(frame[col]), unit="ms", utc=True)
        metric_cols = [f"metric.{k}" for k in kept["metric"]]
        frame[metric_cols] = frame[metric_cols].astype("float64")
        if columns is not None:
            frame.attrs["stored_columns"] = [f"{field}.{k}" for field, keys in (
                ("param", params), ("tag", tags), ("metric", metrics)) for k in sorted(keys)]
        return frame

    def download_artifact(self, run_id: str, path: str, dst: str) -> str | None:
        """Download one artifact file of a run into ``dst``; None when the run has none."""
        from mlflow.exceptions import MlflowException

        os.makedirs(dst, exist_ok=True)
        try:
            return str(self.client.download_artifacts(run_id, path, dst))
        except (MlflowException, OSError) as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or \
                    isinstance(exc, OSError):
                return None
            raise

    def artifact_paths(self, run_id: str) -> list[str]:
        """Paths of every artifact file of a run (relative to its artifact root), sorted.

        Directories are walked recursively, one ``list_artifacts`` call per directory.
        """
        files: list[str] = []
        todo: list[str | None] = [None]
        while todo:
            for info in self.client.list_artifacts(run_id, todo.pop()):
                (todo if info.is_dir else files).append(str(info.path))
        return sorted(files)

    def known_run_ids(self, experiment: str, tag: str = "import.source_run_id") -> set[str]:
        """Ids of the active runs of an experiment plus their ``tag`` values (empty if none)."""
        exp = self.client.get_experiment_by_name(experiment)
        found: set[str] = set()
        token = None
        while exp is not None:
            page = self.client.search_runs([exp.experiment_id], max_results=1000,
                                           page_token=token)
            for run in page:
                found.add(str(run.info.run_id))
                if tag in run.data.tags:
                    found.add(str(run.data.tags[tag]))
            token = page.token
            if not token:
                break
        return found
