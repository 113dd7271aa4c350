"""Reading chosen runs by id, and their per-trial values (metric histories).

``bench compare --baseline/--contender`` names runs and sweeps by id: only those runs (and
the children of the sweeps) are read, never the whole store.  A SQL store is read with a
few queries on MLflow's schema (every table has an index on ``run_uuid``); any other store
(a tracking server) through ``MlflowClient``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from runners.tracking.history import metric_histories
from runners.tracking.sql import sql_engine
from runners.tracking.store import connect

#: Ids per ``IN (...)`` clause (SQLite's default limit of bound variables is 999).
CHUNK = 500
PARENT = "mlflow.parentRunId"
SWEEP = "sweep.id"


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i:i + CHUNK])


def _in(column: str, ids: list[str], prefix: str = "p") -> tuple[str, dict[str, str]]:
    """``column IN (:p0, :p1, ...)`` and its bound values."""
    names = {f"{prefix}{i}": v for i, v in enumerate(ids)}
    return f"{column} IN ({', '.join(':' + n for n in names)})", names


def expand_ids(uri: str, ids: Sequence[str]) -> dict[str, list[str]]:
    """The runs each id stands for: a run is itself, a sweep its child runs.

    Parameters
    ----------
    uri : str
        The tracking URI.
    ids : sequence of str
        Run ids (a sweep's parent run stands for its children) or sweep ids (the
        ``sweep.id`` tag of a sweep's runs: every child run of that sweep).

    Returns
    -------
    dict
        ``{id: [run id, ...]}`` in the order of ``ids``.  A sweep parent whose sweep ran no
        child of its own (every job skipped as already FINISHED) stands for the children
        of its ``sweep.id``.

    Raises
    ------
    ValueError
        When an id is neither a run of the store nor a sweep id; the message names it.
    """
    engine = sql_engine(uri)
    out = _expand_sql(engine, ids) if engine is not None else _expand_client(uri, ids)
    unknown = [i for i in ids if i not in out]
    if unknown:
        raise ValueError(f"no run or sweep {', '.join(map(repr, unknown))} in {uri}")
    return {i: out[i] for i in ids}


def _expand_sql(engine: Any, ids: Sequence[str]) -> dict[str, list[str]]:
    from sqlalchemy import text

    out: dict[str, list[str]] = {}
    wanted = list(dict.fromkeys(ids))
    with engine.connect() as conn:
        clause, bind = _in("run_uuid", wanted)
        runs = {str(r) for (r,) in conn.execute(text(
            f"SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' AND {clause}"), bind)}
        clause, bind = _in("run_uuid", [i for i in wanted if i in runs] or [""])
        tags: dict[str, dict[str, str]] = {}
        for run, key, value in conn.execute(text(
                f"SELECT run_uuid, key, value FROM tags WHERE key IN ('{PARENT}', '{SWEEP}') "
                f"AND {clause}"), bind):
            tags.setdefault(str(run), {})[str(key)] = str(value)

        def children(key: str, value: str) -> list[str]:
            rows = conn.execute(text(
                "SELECT t.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
                "WHERE t.key = :key AND t.value = :value AND r.lifecycle_stage = 'active' "
                f"AND t.run_uuid IN (SELECT run_uuid FROM tags WHERE key = '{PARENT}') "
                "ORDER BY r.start_time"), {"key": key, "value": value})
            return [str(r) for (r,) in rows]

        for i in wanted:
            own = tags.get(i, {})
            if i in runs and not (SWEEP in own and PARENT not in own):
                out[i] = [i]                                # an ordinary run
            elif i in runs:                                 # a sweep's parent run
                out[i] = children(PARENT, i) or children(SWEEP, own[SWEEP])
            else:                                           # maybe a sweep.id value
                kids = children(SWEEP, i)
                if kids:
                    out[i] = kids
    return out


def _expand_client(uri: str, ids: Sequence[str]) -> dict[str, list[str]]:
    from mlflow.exceptions import MlflowException

    client = connect(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    out: dict[str, list[str]] = {}

    def children(key: str, value: str) -> list[str]:
        runs = client.search_runs(experiments, f"tags.`{key}` = '{value}'",
                                  order_by=["attributes.start_time ASC"], max_results=50000)
        return [str(r.info.run_id) for r in runs if PARENT in r.data.tags]

    for i in dict.fromkeys(ids):
        try:
            run = client.get_run(i)
        except MlflowException:
            run = None
        if run is not None and run.info.lifecycle_stage == "active":
            tags = run.data.tags
            if SWEEP in tags and PARENT not in tags:
                out[i] = children(PARENT, i) or children(SWEEP, tags[SWEEP])
            else:
                out[i] = [i]
        elif experiments:
            kids = children(SWEEP, i)
            if kids:
                out[i] = kids
    return out


def runs_by_id(uri: str, run_ids: Sequence[str]) -> Any:
    """Some runs as a wide table, as :meth:`runners.tracking.query.StoreReader.runs_table`
    makes it (``run_id``, ``experiment``, ``status``, times, ``param.*``, ``tag.*``,
    ``metric.*`` latest values), reading only these runs.

    Parameters
    ----------
    uri : str
        The tracking URI.
    run_ids : sequence of str
        Ids of runs of the store.

    Returns
    -------
    pandas.DataFrame
        One row per run, ordered by start time.
    """
    import pandas as pd

    ids = list(dict.fromkeys(run_ids))
    engine = sql_engine(uri)
    rows = _rows_sql(engine, ids) if engine is not None else _rows_client(uri, ids)
    groups: dict[str, set[str]] = {"param": set(), "tag": set(), "metric": set()}
    for row in rows:
        for column in row:
            field = column.split(".", 1)[0]
            if field in groups:
                groups[field].add(column)
    base = ["run_id", "experiment", "status", "start_time", "end_time"]
    columns = [*base, *(c for f in ("param", "tag", "metric") for c in sorted(groups[f]))]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(pd.to_numeric(frame[col]), unit="ms", utc=True)
    metric_cols = sorted(groups["metric"])
    frame[metric_cols] = frame[metric_cols].astype("float64")
    return frame.sort_values("start_time", kind="stable").reset_index(drop=True)


def _rows_sql(engine: Any, ids: list[str]) -> list[dict[str, Any]]:
    from sqlalchemy import text

    rows: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        names = {str(i): str(n) for i, n in conn.execute(text(
            "SELECT experiment_id, name FROM experiments"))}
        for chunk in _chunks(ids):
            clause, bind = _in("run_uuid", chunk)
            for run, exp, status, start, end in conn.execute(text(
                    "SELECT run_uuid, experiment_id, status, start_time, end_time FROM runs "
                    f"WHERE {clause}"), bind):
                rows[str(run)] = {"run_id": str(run), "experiment": names.get(str(exp), exp),
                                  "status": str(status), "start_time": start, "end_time": end}
            for field, table in (("param", "params"), ("tag", "tags")):
                for run, key, value in conn.execute(text(
                        f"SELECT run_uuid, key, value FROM {table} WHERE {clause}"), bind):
                    rows[str(run)][f"{field}.{key}"] = value
            for run, key, value, is_nan in conn.execute(text(
                    f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE {clause}"),
                    bind):
                rows[str(run)][f"metric.{key}"] = float("nan") if is_nan else float(value)
    return [rows[i] for i in ids if i in rows]


def _rows_client(uri: str, ids: list[str]) -> list[dict[str, Any]]:
    client = connect(uri)
    names: dict[str, str] = {}
    rows = []
    for i in ids:
        run = client.get_run(i)
        exp = str(run.info.experiment_id)
        if exp not in names:
            names[exp] = str(client.get_experiment(exp).name)
        row: dict[str, Any] = {"run_id": i, "experiment": names[exp],
                               "status": str(run.info.status),
                               "start_time": run.info.start_time, "end_time": run.info.end_time}
        row.update({f"param.{k}": v for k, v in run.data.params.items()})
        row.update({f"tag.{k}": v for k, v in run.data.tags.items()})
        row.update({f"metric.{k}": float(v) for k, v in run.data.metrics.items()})
        rows.append(row)
    return rows


def metric_history(uri: str, run_ids: Sequence[str], keys: Sequence[str]) -> Any:
    """Every logged value of some metrics of some runs (a per-trial metric's history has
    one value per trial, step = trial index).

    Parameters
    ----------
    uri : str
        The tracking URI.
    run_ids, keys : sequence of str
        The runs and the metric names.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id``, ``key``, ``step``, ``value`` (NaN values left out), sorted by
        run, key and step; a step logged twice keeps its latest value.
    """
    import pandas as pd

    ids, names = list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))
    histories = metric_histories(uri, ids, keys=names) if ids and names else {}
    records = [(run, key, step, ts, value) for run, history in histories.items()
               for key, points in history.items() for step, value, ts in points]
    frame = pd.DataFrame.from_records(records,
                                      columns=["run_id", "key", "step", "time", "value"])
    frame = frame.dropna(subset=["value"]).sort_values(["run_id", "key", "step", "time"],
                                                       kind="stable")
    frame = frame.drop_duplicates(["run_id", "key", "step"], keep="last")
    return frame.drop(columns="time").reset_index(drop=True)
