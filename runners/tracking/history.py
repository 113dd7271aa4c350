"""Whole runs for ``bench publish``/``bench import``: every metric's history read in bulk,
a run's artifact files fetched to a directory, and a run's history written back with its
original steps and timestamps.

A SQL store (SQLite, PostgreSQL) is read with one query per 500 runs on MLflow's
``metrics`` table (``get_metric_history`` per metric per run costs a round trip each);
other stores through MLflow's client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runners.tracking.sql import sql_engine
from runners.tracking.store import BATCH_METRICS, connect

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: One metric point: ``(step, value, timestamp in ms)``.
Point = tuple[int, float, int]
#: ``{metric key: points sorted by (step, timestamp, value)}``.
History = dict[str, list[Point]]
#: Runs per query of the bulk reader (well under SQLite's 999 bound parameters).
CHUNK = 500


def _order(points: list[Point]) -> list[Point]:
    # NaN sorts as -inf so the order is total and the same on both sides of a round trip.
    return sorted(points, key=lambda p: (p[0], p[2], -math.inf if math.isnan(p[1]) else p[1]))


def metric_histories(uri: str, run_ids: Sequence[str], client: MlflowClient | None = None,
                     bulk: bool = True, keys: Sequence[str] | None = None
                     ) -> dict[str, History]:
    """Every metric point of the runs: ``{run_id: {key: [(step, value, ts), ...]}}``.

    Parameters
    ----------
    uri : str
        The tracking URI.
    run_ids : sequence of str
        The runs; a run without metrics maps to ``{}``.
    client : MlflowClient, optional
        Used for a store that is not SQL (made from ``uri`` when needed).
    bulk : bool
        Read a SQL store in bulk (False: through MLflow's client, as other stores).
    keys : sequence of str, optional
        Only these metrics (default: every one).

    Returns
    -------
    dict
        Points of each key sorted by step, then timestamp, then value; NaN as ``nan``.
    """
    out: dict[str, History] = {str(r): {} for r in run_ids}
    engine = sql_engine(uri) if bulk else None
    if engine is None:
        client = client or connect(uri)
        for run_id in out:
            logged = client.get_run(run_id).data.metrics
            for key in sorted(logged if keys is None else set(keys) & set(logged)):
                out[run_id][key] = _order([(int(m.step), float(m.value), int(m.timestamp))
                                           for m in client.get_metric_history(run_id, key)])
        return out
    from sqlalchemy import bindparam, text

    where = "run_uuid IN :ids" + ("" if keys is None else " AND key IN :keys")
    query = text("SELECT run_uuid, key, step, value, timestamp, is_nan FROM metrics "
                 f"WHERE {where}").bindparams(bindparam("ids", expanding=True))
    named = {} if keys is None else {"keys": list(dict.fromkeys(keys))}
    if keys is not None:
        query = query.bindparams(bindparam("keys", expanding=True))
    ids = list(out)
    with engine.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            for run, key, step, value, ts, is_nan in conn.execute(
                    query, {"ids": ids[i:i + CHUNK], **named}):
                out[run].setdefault(key, []).append(
                    (int(step), math.nan if is_nan else float(value), int(ts)))
    return {run: {k: _order(v) for k, v in sorted(h.items())} for run, h in out.items()}


def artifact_uris(uri: str, run_ids: Sequence[str]) -> dict[str, str]:
    """``{run_id: artifact URI}`` of the runs, read in bulk from a SQL store ({} otherwise)."""
    engine = sql_engine(uri)
    if engine is None:
        return {}
    from sqlalchemy import bindparam, text

    query = text("SELECT run_uuid, artifact_uri FROM runs WHERE run_uuid IN :ids"
                 ).bindparams(bindparam("ids", expanding=True))
    ids, out = list(run_ids), {}
    with engine.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            out.update({str(r): str(a or "") for r, a in conn.execute(
                query, {"ids": ids[i:i + CHUNK]})})
    return out


def download_run_artifacts(client: MlflowClient, run_id: str, dst: Path,
                           artifact_uri: str = "") -> Path:
    """The folder holding every artifact file of a run: a local ``file:`` artifact URI is
    read where it is (one ``get_run`` per run saved: 29 ms each on a SQLite store), any
    other copied under ``dst``.  ``dst`` when the run has none."""
    if artifact_uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        local = Path(unquote(urlparse(artifact_uri).path))
        return local if local.is_dir() else dst
    dst.mkdir(parents=True, exist_ok=True)
    if not client.list_artifacts(run_id):
        return dst
    return Path(client.download_artifacts(run_id, "", str(dst)))


def log_history(client: MlflowClient, run_id: str, history: Mapping[str, Sequence[Point]]) -> int:
    """Log metric points with their own steps and timestamps (``log_batch``); the count."""
    from mlflow.entities import Metric

    points = [Metric(key, float(value), int(ts), int(step))
              for key, rows in history.items() for step, value, ts in rows]
    for i in range(0, len(points), BATCH_METRICS):
        client.log_batch(run_id, metrics=points[i:i + BATCH_METRICS])
    return len(points)
