"""Recreate runs in a store as they were recorded elsewhere: the spool's journals (``bench
sync``) and published run records (``bench import``), with their original times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.tracking.history import Point, log_history
from runners.tracking.store import BATCH_METRICS, MAX_PARAM_LEN
from runners.tracking.writer import MlflowWriter, now_ms

if TYPE_CHECKING:
    from mlflow import MlflowClient


class Replayer:
    """Writes recorded runs into the store at ``uri``.

    Parameters
    ----------
    uri : str
        The tracking URI.
    artifact_root : str
        Local directory for artifacts of new experiments ('' = the server's default).
    """

    def __init__(self, uri: str, artifact_root: str = "") -> None:
        self.uri = uri
        self.writer = MlflowWriter(uri, artifact_root, spools=False)

    @property
    def client(self) -> MlflowClient:
        """The MlflowClient, made on first use."""
        return self.writer.client

    def find_spooled(self, experiment: str, spool_id: str) -> str | None:
        """The run an earlier sync created from journal ``spool_id`` (tag ``spool.id``)."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.client.search_runs([exp.experiment_id], max_results=1,
                                       filter_string=f"tags.`spool.id` = '{spool_id}'")
        return str(runs[0].info.run_id) if runs else None

    def create_spooled(self, experiment: str, run_name: str, start_ms: int,
                       params: Mapping[str, str], tags: Mapping[str, str]) -> str:
        """Create a journaled run on the server as it was opened: its start time, tags and
        params.  Returns the server's run id."""
        all_tags = {k: str(v)[:MAX_PARAM_LEN] for k, v in tags.items()}
        run = self.client.create_run(self.writer.experiment_id(experiment),
                                     start_time=start_ms, tags=all_tags, run_name=run_name)
        run_id = str(run.info.run_id)
        self.writer.log_params(run_id, params)
        return run_id

    def apply_spooled(self, run_id: str, op: Mapping[str, Any], directory: Path,
                      dedup: bool = False) -> None:
        """Apply one journaled operation (metrics, tags, params, artifact, artifact_dir, end).

        ``dedup``: the operation may have been applied by a sync that was interrupted;
        metric points the server already has (same key, value, time and step) are skipped.
        """
        from mlflow.entities import Metric

        name = op["op"]
        if name == "metrics":
            points = [Metric(str(k), float(v), int(t), int(s)) for k, v, t, s in op["points"]]
            if dedup:
                have = {(m.key, m.value, m.timestamp, m.step) for key in {p.key for p in points}
                        for m in self.client.get_metric_history(run_id, key)}
                points = [p for p in points if (p.key, p.value, p.timestamp, p.step) not in have]
            for i in range(0, len(points), BATCH_METRICS):
                self.client.log_batch(run_id, metrics=points[i:i + BATCH_METRICS])
        elif name == "tags":
            self.writer.set_tags(run_id, op["tags"])
        elif name == "params":
            self.writer.log_params(run_id, op["params"])
        elif name == "artifact":
            self.client.log_artifact(run_id, str(directory / op["file"]), op["artifact_path"])
        elif name == "artifact_dir":
            self.client.log_artifacts(run_id, str(directory / op["dir"]), op["artifact_path"])
        elif name == "end":
            self.client.set_terminated(run_id, status=op["status"], end_time=int(op["time"]))
        else:
            raise ValueError(f"unknown journal operation {name!r}")

    def import_run(self, experiment: str, status: str, start_ms: int | None,
                   end_ms: int | None, params: Mapping[str, str],
                   metrics: Mapping[str, float], tags: Mapping[str, str],
                   history: Mapping[str, Sequence[Point]] | None = None,
                   artifacts: Path | None = None) -> str:
        """Recreate a run from its record: times, status, params, metrics, tags, artifacts.

        With ``history`` every metric point is logged with its own step and timestamp;
        without, the latest ``metrics`` once each (step 0, at the end time).  The files
        under ``artifacts`` become the run's artifacts.  A RUNNING run stays open.
        Returns the new run's id.
        """
        all_tags = {k: str(v)[:MAX_PARAM_LEN] for k, v in tags.items()}
        run = self.client.create_run(self.writer.experiment_id(experiment),
                                     start_time=start_ms, tags=all_tags,
                                     run_name=all_tags.get("mlflow.runName"))
        run_id = str(run.info.run_id)
        stamp = end_ms or start_ms or now_ms()
        self.writer.log_params(run_id, params)
        if history is None:
            self.writer.log_points(run_id, [(k, float(v), 0) for k, v in metrics.items()],
                                   stamp)
        else:
            log_history(self.client, run_id, history)
        if artifacts is not None and any(artifacts.iterdir()):
            self.client.log_artifacts(run_id, str(artifacts))
        if status != "RUNNING":
            self.client.set_terminated(run_id, status=status, end_time=end_ms)
        return run_id
