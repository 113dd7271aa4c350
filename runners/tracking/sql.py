"""Bulk reads of a SQL store (SQLite, PostgreSQL): MLflow's schema read with one query per
table, without MLflow's ORM (for 10,000 runs, 0.9 s instead of 7.5 s)."""

from __future__ import annotations

from typing import Any

_ENGINES: dict[str, Any] = {}


def sql_engine(uri: str) -> Any:
    """A SQLAlchemy engine on a SQL store's URI (None for other stores, e.g. http://)."""
    if not uri.startswith(("sqlite:///", "postgresql", "mysql", "mssql")):
        return None
    if uri not in _ENGINES:
        from sqlalchemy import create_engine

        _ENGINES[uri] = create_engine(uri)
    return _ENGINES[uri]


def experiment_ids_sql(engine: Any, names: list[str] | None) -> dict[str, str]:
    """:meth:`runners.tracking.query.StoreReader.experiment_ids` by one query on a SQL store."""
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


def runs_table_sql(engine: Any, name_of: dict[str, str], status: str | None,
                    since_ms: int | None, max_runs: int) -> Any:
    """:meth:`runners.tracking.query.StoreReader.runs_table` read straight from MLflow's
    SQL schema (runs, tags, params, latest_metrics): one query per table instead of an ORM
    object per value."""
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
        long = {field: pd.read_sql_query(text(
            f"SELECT run_uuid, key, value{', is_nan' if field == 'metric' else ''} FROM {table} "
            f"WHERE run_uuid IN ({chosen})"), conn, params=bind)
            for field, table in (("param", "params"), ("tag", "tags"),
                                ("metric", "latest_metrics"))}
    metrics = long["metric"]
    metrics.loc[metrics["is_nan"].astype(bool), "value"] = float("nan")
    wide = [runs.set_index("run_id")]
    for field in ("param", "tag", "metric"):
        table = long[field].pivot(index="run_uuid", columns="key", values="value")
        wide.append(table.rename(columns=lambda k, field=field: f"{field}.{k}"))
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
