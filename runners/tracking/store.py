"""Open an MLflow store: the client, SQLite's WAL mode, and what a run's params look like."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

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


def is_remote(uri: str) -> bool:
    """Whether a tracking URI names a server (http, https)."""
    return uri.startswith(("http://", "https://"))


def local_store_paths(uri: str) -> Path | None:
    """The SQLite file behind a ``sqlite:///`` URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def connect(uri: str) -> MlflowClient:
    """An MlflowClient on a store; a new SQLite store is made under a file lock, in WAL mode.

    Two processes opening a new store at once would both run MLflow's schema migrations,
    and one would fail: the first makes it while the other waits.
    """
    db = local_store_paths(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    if db is None:
        return MlflowClient(tracking_uri=uri)
    import fcntl

    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)   # makes the store and its tables
        _sqlite_wal(client)
    return client


def _sqlite_wal(client: MlflowClient) -> None:
    """Put a SQLite store in WAL mode with ``synchronous=NORMAL``.

    Each MLflow write is a transaction; in SQLite's default rollback-journal mode each
    commit syncs the file twice.  WAL commits 2-3x faster here (create_run 9.7 → 3.2 ms)
    and lets readers (``bench runs``, the UI) work while a sweep writes.  A crash can lose
    the last commits but never corrupts the file.
    """
    from sqlalchemy import event

    try:   # MLflow keeps the engine of a SQL store here; there is no public accessor
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
