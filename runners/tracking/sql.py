"""Bulk reads of a SQL store (SQLite, PostgreSQL): MLflow's schema read with one query per
table, without MLflow's ORM, and turned into the wide runs table with numpy.

A SQLite store is read with the standard library's ``sqlite3`` (no SQLAlchemy: its row
objects cost as much as the read itself); other databases through a SQLAlchemy engine.
Each of ``params``, ``tags`` and ``latest_metrics`` is read by one plain table scan (an
index walk would fetch the values in random order), only the keys asked for; the rows of
runs that were not selected are dropped in numpy.  For 100,000 runs (2 million key/value
rows) the whole table takes ~4 s of CPU, most of it in ``fetchall`` (it was ~12 s through
SQLAlchemy, pandas.read_sql and pivot); the columns ``bench compare`` uses, ~1 s.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any

_ENGINES: dict[str, Any] = {}
SQLITE = "sqlite:///"
#: The key/value tables of a run and the prefix of their columns in the runs table.
TABLES = (("param", "params"), ("tag", "tags"), ("metric", "latest_metrics"))
#: Below this share of the store's runs, the key/value rows are read by run id (an index
#: lookup per row) rather than by scanning the whole table.
SELECTIVE = 0.2

Fetch = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def sql_engine(uri: str) -> Any:
    """A SQLAlchemy engine on a SQL store's URI (None for other stores, e.g. http://)."""
    if not uri.startswith(("sqlite:///", "postgresql", "mysql", "mssql")):
        return None
    if uri not in _ENGINES:
        from sqlalchemy import create_engine

        _ENGINES[uri] = create_engine(uri)
    return _ENGINES[uri]


def is_sql(uri: str) -> bool:
    """Whether a URI names a SQL store (read in bulk)."""
    return uri.startswith(("sqlite:///", "postgresql", "mysql", "mssql"))


def _fetcher(uri: str) -> tuple[Fetch, Callable[[], None], bool]:
    """``(fetch(sql, params) -> rows, close(), is_sqlite)`` on a SQL store, in one read
    transaction (so the tables read agree with each other)."""
    if uri.startswith(SQLITE):
        con = sqlite3.connect(uri[len(SQLITE):])
        con.execute("BEGIN")

        def fetch_sqlite(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            return con.execute(sql, tuple(params)).fetchall()

        def close_sqlite() -> None:
            con.rollback()
            con.close()

        return fetch_sqlite, close_sqlite, True
    from sqlalchemy import text

    conn = sql_engine(uri).connect()
    transaction = conn.begin()

    def fetch(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        parts = sql.split("?")             # "?" placeholders as SQLAlchemy's named binds
        named = parts[0] + "".join(f":p{i}{part}" for i, part in enumerate(parts[1:]))
        bind = {f"p{i}": value for i, value in enumerate(params)}
        return [tuple(row) for row in conn.execute(text(named), bind).fetchall()]

    def close() -> None:
        transaction.rollback()
        conn.close()

    return fetch, close, False


def experiment_ids_sql(uri: str, names: list[str] | None) -> dict[str, str]:
    """:meth:`runners.tracking.query.StoreReader.experiment_ids` by one query on a SQL store."""
    fetch, close, _ = _fetcher(uri)
    try:
        found = {str(n): str(i) for i, n in fetch(
            "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'", ())}
    finally:
        close()
    if names is None:
        return dict(sorted(found.items()))
    unknown = [n for n in names if n not in found]
    if unknown:
        valid = ", ".join(sorted(found)) or "none yet"
        raise ValueError(f"no experiment {', '.join(map(repr, unknown))}; experiments: {valid}")
    return {n: found[n] for n in dict.fromkeys(names)}


def tag_values_sql(uri: str, key: str) -> list[str]:
    """The distinct values of one tag over every run of a SQL store, sorted."""
    fetch, close, sqlite = _fetcher(uri)
    try:       # a plain scan: the (key, run_uuid) index would fetch each value at random
        rows = fetch(f"SELECT DISTINCT value FROM tags{' NOT INDEXED' if sqlite else ''} "
                     "WHERE key = ?", [key])
    finally:
        close()
    return sorted(str(v) for (v,) in rows if v is not None)


def wanted_keys(keys: Sequence[str], field: str, columns: Collection[str] | None) -> list[str]:
    """The keys of one table (``field``: param, tag or metric) whose column
    ``<field>.<key>`` is in ``columns`` (names or ``fnmatch`` patterns; None: all)."""
    if columns is None:
        return list(keys)
    prefix = f"{field}."
    patterns = [c for c in columns if c.startswith(prefix)]
    return [k for k in keys if any(fnmatch.fnmatchcase(prefix + k, p) for p in patterns)]


def _chosen_runs(fetch: Fetch, name_of: dict[str, str], status: str | None,
                 since_ms: int | None, max_runs: int) -> list[tuple[Any, ...]]:
    """``(run_uuid, experiment_id, status, start_time, end_time)`` of the selected runs,
    newest first: active, of the experiments, no sweep parent, the filters, the limit."""
    where = ["lifecycle_stage = 'active'",
             f"experiment_id IN ({', '.join(str(int(i)) for i in name_of)})",
             "(run_uuid NOT IN (SELECT run_uuid FROM tags WHERE key = 'sweep.id') OR run_uuid "
             "IN (SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId'))"]   # no parents
    bind: list[Any] = []
    if status is not None:
        where.append("status = ?")
        bind.append(status)
    if since_ms is not None:
        where.append("start_time >= ?")
        bind.append(int(since_ms))
    return fetch("SELECT run_uuid, experiment_id, status, start_time, end_time FROM runs "
                 f"WHERE {' AND '.join(where)} ORDER BY start_time DESC, run_uuid "
                 f"LIMIT {int(max_runs)}", bind)


def _long_rows(fetch: Fetch, table: str, keys: list[str], run_ids: Sequence[str] | None,
               sqlite: bool) -> list[tuple[Any, ...]]:
    """``(run_uuid, key, value[, is_nan])`` rows of some keys of a table (of some runs)."""
    what = "run_uuid, key, value" + (", is_nan" if table == "latest_metrics" else "")
    marks = ", ".join("?" * len(keys))
    if run_ids is None:          # a plain scan in storage order: no index, no random reads
        return fetch(f"SELECT {what} FROM {table}{' NOT INDEXED' if sqlite else ''} "
                     f"WHERE key IN ({marks})", keys)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(run_ids), 500):       # by run id: few runs of a big store
        part = list(run_ids[start:start + 500])
        rows += fetch(f"SELECT {what} FROM {table} WHERE key IN ({marks}) AND run_uuid IN "
                      f"({', '.join('?' * len(part))})", [*keys, *part])
    return rows


def _columns(rows: list[tuple[Any, ...]], ids: Any, field: str) -> dict[str, Any]:
    """The wide columns of one table's long rows: ``{"<field>.<key>": numpy array}`` aligned
    with ``ids`` (a pandas Index of run ids); strings (None where a run lacks the key) or,
    for metrics, float64 (NaN where it lacks the value or logged NaN)."""
    import numpy as np
    import pandas as pd

    if not rows:
        return {}
    table = np.empty((len(rows), len(rows[0])), dtype=object)
    table[:] = rows                       # one C loop (zip(*rows) is slow for many rows)
    pos = ids.get_indexer(table[:, 0])
    keep = pos >= 0
    codes, names = pd.factorize(table[keep, 1])
    pos = pos[keep]
    if field == "metric":
        values = table[keep, 2].astype(np.float64)
        values[table[keep, 3].astype(bool)] = np.nan
    else:
        values = table[keep, 2]
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = {}
    for k, name in enumerate(names):
        rows_k = order[bounds[k]:bounds[k + 1]]
        column = np.full(len(ids), np.nan if field == "metric" else None,
                         dtype=np.float64 if field == "metric" else object)
        column[pos[rows_k]] = values[rows_k]
        out[f"{field}.{name}"] = column
    return out


def runs_table_sql(uri: str, name_of: dict[str, str], status: str | None,
                   since_ms: int | None, max_runs: int,
                   columns: Collection[str] | None = None) -> Any:
    """:meth:`runners.tracking.query.StoreReader.runs_table` read straight from MLflow's
    SQL schema (runs, tags, params, latest_metrics): one query per table instead of an ORM
    object per value, only the ``columns`` asked for (names or ``fnmatch`` patterns such
    as ``tag.direction.*``; None: every column)."""
    import numpy as np
    import pandas as pd

    fetch, close, sqlite = _fetcher(uri)
    try:
        runs = _chosen_runs(fetch, name_of, status, since_ms, max_runs)[::-1]  # oldest first
        (total,), = fetch("SELECT count(*) FROM runs", ())
        selective = len(runs) < SELECTIVE * total
        run_ids = [str(r[0]) for r in runs]
        long, stored = {}, []
        for field, table in TABLES:
            every = sorted(str(k) for (k,) in fetch(f"SELECT DISTINCT key FROM {table}", ()))
            stored += [f"{field}.{k}" for k in every]
            keys = wanted_keys(every, field, columns)
            long[field] = (_long_rows(fetch, table, keys, run_ids if selective else None,
                                      sqlite) if keys and runs else [])
    finally:
        close()
    ids = pd.Index(run_ids, dtype=object)
    wide: dict[str, Any] = {}
    for field, _ in TABLES:
        part = _columns(long[field], ids, field)
        wide.update({name: part[name] for name in sorted(part)})
    base: list[Any] = list(zip(*runs, strict=True)) if runs else [()] * 5
    frame = pd.DataFrame({
        "run_id": run_ids, "experiment": [name_of[str(e)] for e in base[1]],
        "status": list(base[2]),
        **{col: pd.to_datetime(np.array(values, dtype=np.float64), unit="ms", utc=True)
           for col, values in (("start_time", base[3]), ("end_time", base[4]))},
    })
    extra = pd.DataFrame(wide, index=frame.index)      # strings: pandas' own string dtype
    frame = pd.concat([frame, extra], axis=1)
    frame = frame.sort_values("start_time", kind="stable").reset_index(drop=True)
    if columns is not None:     # what else there is to read (for the hints of a bad name)
        frame.attrs["stored_columns"] = stored
    return frame
