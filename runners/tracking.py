"""Everything that talks to MLflow.  The ONLY module that imports mlflow.

Runs are addressed by explicit run ids (no fluent global state) and logged in batches.
A run is opened before the first stage (status RUNNING, the placeholder) and always
closed with a status.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_PARAM_LEN = 6000
BATCH_METRICS = 1000
BATCH_PARAMS = 100
BATCH_TAGS = 100


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Flatten a nested dict/list config into ``{"a.b.c": "value"}`` MLflow params.

    Lists become JSON strings; values are cut to MLflow's param length limit.
    """
    out: dict[str, str] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    text = json.dumps(tree) if isinstance(tree, list | tuple) else str(tree)
    out[prefix.rstrip(".")] = text[:MAX_PARAM_LEN]
    return out


def _locked(method: Any) -> Any:
    """Serialize a Tracker method: a sweep's job threads share one client."""

    @functools.wraps(method)
    def wrapper(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def _spooled(method: Any) -> Any:
    """Serialize like :func:`_locked`, and send the call to the spool when the tracking
    server cannot be reached (from the first failed call on, for the rest of the process)."""
    name = method.__name__
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            scratch: list[str] = []
            try:
                bound = signature.bind(self, *args, **kwargs)
                _redact_arguments(self.redactor, bound.arguments, scratch)
                args, kwargs = bound.args[1:], bound.kwargs
                if self.spool is not None and self.offline_reason is not None:
                    return getattr(self.spool, name)(*args, **kwargs)
                try:
                    return method(self, *args, **kwargs)
                except Exception as exc:
                    if self.spool is None or not unreachable(exc):
                        raise
                    self.go_offline(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
                    return getattr(self.spool, name)(*args, **kwargs)
            finally:
                for tmp in scratch:
                    shutil.rmtree(tmp, ignore_errors=True)

    return wrapper


def _redact_arguments(redactor: Any, arguments: dict[str, Any], scratch: list[str]) -> None:
    """Redact a Tracker call's arguments in place, before anything is logged or spooled."""
    for key in ("params", "tags"):
        if key in arguments:
            arguments[key] = redactor.mapping(arguments[key])
    if "paths" in arguments:
        arguments["paths"] = redactor.files(list(arguments["paths"]), scratch)
    if "directory" in arguments:
        arguments["directory"] = redactor.directory(str(arguments["directory"]), scratch)


def is_remote(uri: str) -> bool:
    """Whether a tracking URI names a server (http, https)."""
    return uri.startswith(("http://", "https://"))


def unreachable(exc: BaseException) -> bool:
    """Whether an MLflow call failed because the server could not be reached (connection
    refused or reset, a timeout, or a gateway's 502/503/504), not because of the request."""
    import requests

    network = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
               requests.exceptions.RetryError, ConnectionError, TimeoutError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, network):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return any(s in text for s in ("Max retries exceeded", "Connection refused",
                                   "Connection aborted", "Read timed out", "RemoteDisconnected",
                                   "error code 502", "error code 503", "error code 504"))


def probe(uri: str, timeout: float = 3.0) -> str | None:
    """None when a tracking server answers ``GET /health``; else why it does not."""
    import requests

    try:
        reply = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.exceptions.RequestException as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return f"HTTP {reply.status_code} from {uri}/health" if reply.status_code >= 500 else None


#: MLflow's HTTP retries, shortened when a spool can take over (MLflow's defaults: 7 retries
#: with backoff factor 2, i.e. minutes before a call to a dead server gives up).
SPOOL_RETRY_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                   "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def _sqlite_wal(client: Any) -> None:
    """Put a SQLite store in WAL mode with ``synchronous=NORMAL``.

    Each MLflow write is a transaction; in SQLite's default rollback-journal mode each
    commit syncs the file twice.  WAL commits 2-3x faster here (create_run 9.7 → 3.2 ms)
    and lets readers (``bench runs``, the UI) work while a sweep writes.  A crash can lose
    the last commits but never corrupts the file.
    """
    from sqlalchemy import event

    try:
        engine = client._tracking_client.store.engine
    except AttributeError:      # not a SQLAlchemy store
        return

    if not event.contains(engine, "connect", _wal_pragmas):
        event.listen(engine, "connect", _wal_pragmas)
        engine.dispose()     # pooled connections reconnect with the pragmas


def _wal_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def local_store_paths(uri: str) -> Path | None:
    """The SQLite file behind a ``sqlite:///`` URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


class Tracker:
    """A thin, explicit-run-id façade over ``mlflow.MlflowClient``.

    Parameters
    ----------
    uri : str
        The tracking URI (``sqlite:///…/mlflow.db``, ``http://host:port``, …).
    artifact_root : str
        Local directory for artifacts of new experiments ('' = the server's default).
    lazy : bool
        Make the MLflow client on first use (read-only verbs that may not need it).
    spool : path, optional
        For a remote server: where runs are journaled when it cannot be reached
        (:mod:`runners.spool`; ``bench sync`` uploads them later).  None: no spool, a
        call to an unreachable server raises.
    redact : sequence of str
        Patterns of secret keys added to :data:`runners.redact.SECRET_WORDS`.  Params,
        tags, failure messages and text artifacts are redacted before they are logged or
        spooled (:class:`runners.redact.Redactor`).
    """

    def __init__(self, uri: str, artifact_root: str = "", lazy: bool = False,
                 spool: str | Path | None = None, redact: Iterable[str] = ()) -> None:
        from runners.redact import Redactor

        self.uri = uri
        self.redactor = Redactor(redact)
        self.artifact_root = artifact_root
        self.lock = threading.RLock()
        self.closed: set[str] = set()       # runs this tracker ended: their status is final
        self._experiments: dict[str, str] = {}
        self.spool: Any = None
        self.offline_reason: str | None = None
        if spool and is_remote(uri):
            from runners.spool import Spool

            self.spool = Spool(spool, uri, closed=self.closed)
            for key, val in SPOOL_RETRY_ENV.items():
                os.environ.setdefault(key, val)
            reason = probe(uri)
            if reason is not None:
                self.go_offline(reason)
        self._client: Any = None
        if not lazy:
            self._client = self._connect()

    def go_offline(self, reason: str) -> None:
        """Send every further call to the spool, and say so once on stderr."""
        import sys

        self.offline_reason = reason
        print(f"warning: the tracking server {self.uri} cannot be reached ({reason}); "
              f"recording to the spool {self.spool.root} instead: upload it later with "
              "`bench sync`", file=sys.stderr)

    def _connect(self) -> Any:
        db = local_store_paths(self.uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        if db is None:
            return MlflowClient(tracking_uri=self.uri)
        # Two processes opening a new store at once would both run MLflow's schema
        # migrations, and one would fail: the first makes it while the other waits.
        import fcntl

        with open(db.with_name(db.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            client = MlflowClient(tracking_uri=self.uri)   # makes the store and its tables
            _sqlite_wal(client)
        return client

    @property
    def client(self) -> Any:
        """The MlflowClient (made on first use when the tracker was made ``lazy``)."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    @_spooled
    def experiment_id(self, name: str) -> str:
        """Get or create an experiment by name (remembered: a sweep asks once per job)."""
        if name in self._experiments:
            return self._experiments[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            self._experiments[name] = str(exp.experiment_id)
            return self._experiments[name]
        location = None
        if self.artifact_root:
            location = (Path(self.artifact_root) / name).resolve().as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:
            exp = self.client.get_experiment_by_name(name)   # created concurrently
            if exp is None:
                raise
            return str(exp.experiment_id)

    @_spooled
    def start_run(self, experiment: str, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """Open a RUNNING run with its params and tags; return its id."""
        from mlflow.entities import Param

        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags["mlflow.runName"] = run_name
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name,
                                     tags=all_tags)
        run_id = str(run.info.run_id)
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), BATCH_PARAMS):
            try:
                self.client.log_batch(run_id, params=items[i:i + BATCH_PARAMS])
            except Exception as exc:   # the server has the run: journal the rest for it
                if self.spool is None or not unreachable(exc):
                    raise
                self.go_offline(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
                self.spool.log_params(run_id, {p.key: p.value for p in items[i:]})
                break
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log many metrics at one step, in batches."""
        self.log_points(run_id, ((k, float(v), step) for k, v in metrics.items()))

    @_spooled
    def log_points(self, run_id: str, points: Iterable[tuple[str, float, int]]) -> None:
        """Log ``(name, value, step)`` points in batches."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, int(s)) for k, v, s in points]
        for i in range(0, len(batch), BATCH_METRICS):
            try:
                self.client.log_batch(run_id, metrics=batch[i:i + BATCH_METRICS])
            except Exception as exc:    # spool what the server did not get, same timestamps
                if self.spool is None or not unreachable(exc):
                    raise
                self.go_offline(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
                self.spool.log_points(run_id, [(m.key, m.value, m.step) for m in batch[i:]],
                                      stamp=now)
                return

    @_spooled
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set many tags, in batches."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_PARAM_LEN]) for k, v in tags.items()]
        for i in range(0, len(items), BATCH_TAGS):
            self.client.log_batch(run_id, tags=items[i:i + BATCH_TAGS])

    @_spooled
    def log_artifacts(self, run_id: str, paths: Iterable[str], artifact_path: str) -> None:
        """Upload files (missing ones are skipped) under ``artifact_path``."""
        for path in paths:
            if os.path.isfile(path):
                self.client.log_artifact(run_id, path, artifact_path)

    @_spooled
    def log_dir(self, run_id: str, directory: str, artifact_path: str) -> None:
        """Upload a directory tree."""
        if os.path.isdir(directory):
            self.client.log_artifacts(run_id, directory, artifact_path)

    @_spooled
    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run with FINISHED, FAILED or KILLED (once: a closed run stays as it is)."""
        if run_id in self.closed:
            return
        self.client.set_terminated(run_id, status=status)
        self.closed.add(run_id)

    @_locked
    def fail_run(self, run_id: str, stage: str, kind: str, message: str,
                 status: str = "FAILED") -> None:
        """Close a run as FAILED (or KILLED) with its cause in ``failure.*`` tags (both
        calls are redacted, and spooled when the server cannot be reached)."""
        if run_id in self.closed:
            return
        self.set_tags(run_id, {"failure.stage": stage, "failure.kind": kind,
                               "failure.message": message})
        self.end_run(run_id, status)

    @_spooled
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

    @_spooled
    def running_runs(self, experiment: str) -> list[tuple[str, dict[str, str]]]:
        """``(run_id, tags)`` of every run of an experiment that is still RUNNING."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], max_results=10000,
                                       filter_string="attributes.status = 'RUNNING'")
        return [(str(r.info.run_id), dict(r.data.tags)) for r in runs]

    def ui_command(self) -> str:
        """The exact shell command that opens the MLflow UI on this store."""
        import shlex

        return shlex.join(self.ui_argv(self.uri, self.artifact_root))

    @staticmethod
    def ui_argv(uri: str, artifact_root: str = "", host: str = "127.0.0.1",
                port: int = 5000) -> list[str]:
        """The argv of ``mlflow ui`` on a store."""
        import sys

        cmd = [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", uri]
        if artifact_root:
            cmd += ["--default-artifact-root", Path(artifact_root).resolve().as_uri()]
        return [*cmd, "--host", host, "--port", str(port)]

    @_locked
    def experiment_names(self) -> list[str]:
        """Names of all experiments in the store."""
        return sorted(e.name for e in self.client.search_experiments())

    @_locked
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

    @_locked
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

    @_locked
    def runs_table(self, experiments: list[str] | None, status: str | None = None,
                   since_ms: int | None = None, max_runs: int = 100000,
                   bulk: bool = True) -> Any:
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

        statuses = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")
        if status is not None and status not in statuses:
            raise ValueError(f"unknown run status {status!r}; use one of {', '.join(statuses)}")
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, got {max_runs}")
        engine = _sql_engine(self.uri) if bulk else None
        if engine is not None:     # a SQL store: read it in bulk, without MLflow's ORM
            name_of = {i: n for n, i in _sql_experiment_ids(engine, experiments).items()}
            if name_of:
                return _runs_table_sql(engine, name_of, status, since_ms, max_runs)
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
        columns = ["run_id", "experiment", "status", "start_time", "end_time",
                   *(f"param.{k}" for k in sorted(params)), *(f"tag.{k}" for k in sorted(tags)),
                   *(f"metric.{k}" for k in sorted(metrics))]
        frame = pd.DataFrame.from_records(rows[::-1], columns=columns)
        for col in ("start_time", "end_time"):
            frame[col] = pd.to_datetime(pd.to_numeric(frame[col]), unit="ms", utc=True)
        metric_cols = [f"metric.{k}" for k in sorted(metrics)]
        frame[metric_cols] = frame[metric_cols].astype("float64")
        return frame

    @_locked
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

    @_locked
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

    @_locked
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

    @_locked
    def find_spooled(self, experiment: str, spool_id: str) -> str | None:
        """The run an earlier sync created from journal ``spool_id`` (tag ``spool.id``)."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.client.search_runs([exp.experiment_id], max_results=1,
                                       filter_string=f"tags.`spool.id` = '{spool_id}'")
        return str(runs[0].info.run_id) if runs else None

    @_locked
    def create_spooled(self, experiment: str, run_name: str, start_ms: int,
                       params: Mapping[str, str], tags: Mapping[str, str]) -> str:
        """Create a journaled run on the server as it was opened: its start time, tags and
        params.  Returns the server's run id."""
        from mlflow.entities import Param

        all_tags = {k: str(v)[:MAX_PARAM_LEN] for k, v in tags.items()}
        run = self.client.create_run(self.experiment_id(experiment), start_time=start_ms,
                                     tags=all_tags, run_name=run_name)
        run_id = str(run.info.run_id)
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[i:i + BATCH_PARAMS])
        return run_id

    @_locked
    def apply_spooled(self, run_id: str, op: Mapping[str, Any], directory: Path,
                      dedup: bool = False) -> None:
        """Apply one journaled operation (metrics, tags, artifact, artifact_dir, end).

        ``dedup``: the operation may have been applied by a sync that was interrupted;
        metric points the server already has (same key, value, time and step) are skipped.
        """
        from mlflow.entities import Metric

        kind = op["op"]
        if kind == "metrics":
            points = [Metric(str(k), float(v), int(t), int(s)) for k, v, t, s in op["points"]]
            if dedup:
                have = {(m.key, m.value, m.timestamp, m.step) for key in {p.key for p in points}
                        for m in self.client.get_metric_history(run_id, key)}
                points = [p for p in points if (p.key, p.value, p.timestamp, p.step) not in have]
            for i in range(0, len(points), BATCH_METRICS):
                self.client.log_batch(run_id, metrics=points[i:i + BATCH_METRICS])
        elif kind == "tags":
            self.set_tags(run_id, op["tags"])
        elif kind == "params":
            from mlflow.entities import Param

            items = [Param(k, str(v)) for k, v in op["params"].items()]
            for i in range(0, len(items), BATCH_PARAMS):
                self.client.log_batch(run_id, params=items[i:i + BATCH_PARAMS])
        elif kind == "artifact":
            self.client.log_artifact(run_id, str(directory / op["file"]), op["artifact_path"])
        elif kind == "artifact_dir":
            self.client.log_artifacts(run_id, str(directory / op["dir"]), op["artifact_path"])
        elif kind == "end":
            self.client.set_terminated(run_id, status=op["status"], end_time=int(op["time"]))
        else:
            raise ValueError(f"unknown journal operation {kind!r}")

    @_locked
    def import_run(self, experiment: str, status: str, start_ms: int | None,
                   end_ms: int | None, params: Mapping[str, str],
                   metrics: Mapping[str, float], tags: Mapping[str, str]) -> str:
        """Recreate a run from its record: times, status, params, latest metrics, tags.

        Metrics are logged once each (step 0, at the end time); a RUNNING run stays open.
        Returns the new run's id.
        """
        from mlflow.entities import Metric, Param

        all_tags = {k: str(v)[:MAX_PARAM_LEN] for k, v in tags.items()}
        run = self.client.create_run(self.experiment_id(experiment), start_time=start_ms,
                                     tags=all_tags, run_name=all_tags.get("mlflow.runName"))
        run_id = str(run.info.run_id)
        stamp = end_ms or start_ms or int(time.time() * 1000)
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[i:i + BATCH_PARAMS])
        points = [Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
        for i in range(0, len(points), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=points[i:i + BATCH_METRICS])
        if status != "RUNNING":
            self.client.set_terminated(run_id, status=status, end_time=end_ms)
        return run_id


_ENGINES: dict[str, Any] = {}


def _sql_engine(uri: str) -> Any:
    """A SQLAlchemy engine on a SQL store's URI (None for other stores, e.g. http://)."""
    if not uri.startswith(("sqlite:///", "postgresql", "mysql", "mssql")):
        return None
    if uri not in _ENGINES:
        from sqlalchemy import create_engine

        _ENGINES[uri] = create_engine(uri)
    return _ENGINES[uri]


def _sql_experiment_ids(engine: Any, names: list[str] | None) -> dict[str, str]:
    """:meth:`Tracker.experiment_ids` by one query on a SQL store."""
    from sqlalchemy import text

    with engine.connect() as conn:
        found = {str(n): str(i) for i, n in conn.execute(text(
            "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"))}
    if names is None:
        return dict(sorted(found.items()))
    unknown = [n for n in names if n not in found]
    if unknown:
        valid = ", ".join(sorted(found)) or "none yet"
        raise ValueError(f"no experiment {', '.join(map(repr, unknown))}; experiments: {valid}")
    return {n: found[n] for n in dict.fromkeys(names)}


def _runs_table_sql(engine: Any, name_of: dict[str, str], status: str | None,
                    since_ms: int | None, max_runs: int) -> Any:
    """:meth:`Tracker.runs_table` read straight from MLflow's SQL schema (runs, tags,
    params, latest_metrics): one query per table instead of an ORM object per value."""
    import pandas as pd
    from sqlalchemy import text

    where = ["lifecycle_stage = 'active'",
             f"experiment_id IN ({', '.join(str(int(i)) for i in name_of)})",
             "(run_uuid NOT IN (SELECT run_uuid FROM tags WHERE key = 'sweep.id') OR run_uuid "
             "IN (SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId'))"]   # no parents
    bind: dict[str, Any] = {}
    if status is not None:
        where.append("status = :status")
        bind["status"] = status
    if since_ms is not None:
        where.append("start_time >= :since")
        bind["since"] = int(since_ms)
    chosen = (f"SELECT run_uuid FROM runs WHERE {' AND '.join(where)} "
              f"ORDER BY start_time DESC LIMIT {int(max_runs)}")
    with engine.connect() as conn:
        runs = pd.read_sql_query(text(
            "SELECT run_uuid AS run_id, experiment_id, status, start_time, end_time FROM runs "
            f"WHERE run_uuid IN ({chosen})"), conn, params=bind)
        long = {kind: pd.read_sql_query(text(
            f"SELECT run_uuid, key, value{', is_nan' if kind == 'metric' else ''} FROM {table} "
            f"WHERE run_uuid IN ({chosen})"), conn, params=bind)
            for kind, table in (("param", "params"), ("tag", "tags"),
                                ("metric", "latest_metrics"))}
    metrics = long["metric"]
    metrics.loc[metrics["is_nan"].astype(bool), "value"] = float("nan")
    wide = [runs.set_index("run_id")]
    for kind in ("param", "tag", "metric"):
        table = long[kind].pivot(index="run_uuid", columns="key", values="value")
        wide.append(table.rename(columns=lambda k, kind=kind: f"{kind}.{k}"))
    frame = pd.concat(wide, axis=1, join="outer").loc[runs["run_id"]].reset_index(
        names="run_id")
    frame["experiment"] = frame["experiment_id"].astype(str).map(name_of)
    frame = frame.sort_values("start_time", kind="stable").reset_index(drop=True)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(pd.to_numeric(frame[col]), unit="ms", utc=True)
    groups = {k: sorted(c for c in frame.columns if c.startswith(f"{k}."))
              for k in ("param", "tag", "metric")}
    frame[groups["metric"]] = frame[groups["metric"]].astype("float64")
    base = ["run_id", "experiment", "status", "start_time", "end_time"]
    return frame[[*base, *groups["param"], *groups["tag"], *groups["metric"]]]


def versions() -> dict[str, str]:
    """Versions of the driver's tools, as tags."""
    import platform
    from importlib import metadata

    out = {"version.python": platform.python_version()}
    for pkg in ("mlflow", "parsl", "hydra-core", "mpi4py"):
        try:
            out[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[f"version.{pkg}"] = "absent"
    return out
