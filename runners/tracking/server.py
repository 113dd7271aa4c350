"""A tracking server: is it there, did a call fail because it is not, and the UI command."""

from __future__ import annotations

import sys
from pathlib import Path

from runners.errors import one_line

#: MLflow's HTTP retries, shortened when a spool can take over (MLflow's defaults: 7 retries
#: with backoff factor 2, i.e. minutes before a call to a dead server gives up).
SPOOL_RETRY_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                   "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
#: The environment of ``mlflow ui`` for a benchmark store: no job-execution workers (MLflow
#: 3 starts 7 ``huey`` consumers for GenAI jobs, which a benchmark store never submits).
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
#: Opens the MLflow UI in its model-training view (runs, charts, comparison), appended to a
#: page's route (``#/experiments/1/runs/<id>?workflowType=machine_learning``): MLflow 3.17's
#: UI follows this query parameter, not the experiment's ``mlflow.experimentKind`` tag.
UI_VIEW = "?workflowType=machine_learning"


def ui_url(host: str, port: int, route: str) -> str:
    """The URL of a page of the MLflow UI (``route`` like ``experiments/1``), opened in
    its model-training view."""
    return f"http://{host}:{port}/#/{route}{UI_VIEW}"


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
        return one_line(exc)
    return f"HTTP {reply.status_code} from {uri}/health" if reply.status_code >= 500 else None


def ui_argv(uri: str, artifact_root: str = "", host: str = "127.0.0.1",
            port: int = 5000) -> list[str]:
    """The argv of ``mlflow ui`` on a store (run it with :data:`UI_ENV` in its environment)."""
    cmd = [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", uri]
    if artifact_root:
        cmd += ["--default-artifact-root", Path(artifact_root).resolve().as_uri()]
    return [*cmd, "--host", host, "--port", str(port)]
