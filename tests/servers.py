"""The real MLflow tracking server on a private PostgreSQL (cluster/mlflow/), as a fixture.

Started once per test session with ``cluster/mlflow/start.sh`` and stopped at its end; a
server that cannot be started fails the tests that use it (nothing skips).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "cluster" / "mlflow"


def script(name: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of cluster/mlflow/*.sh."""
    return subprocess.run(["bash", str(SCRIPTS / name)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def start(env: dict[str, str]) -> str:
    """start.sh (may install PostgreSQL, hence the long timeout); the tracking URI."""
    proc = script("start.sh", env, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"cluster/mlflow/start.sh failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}")
    uris = [line.split("=", 1)[1] for line in proc.stdout.splitlines()
            if line.startswith("export MLFLOW_TRACKING_URI=")]
    assert len(uris) == 1, proc.stdout
    return uris[0]


@dataclass
class Server:
    """The running server and where its state lives."""

    uri: str
    state: Path
    pg_port: int
    env: dict[str, str]
    runs: dict[str, int] = field(default_factory=dict)  # run id -> expected metric points

    def client(self):  # noqa: ANN201 - mlflow is imported lazily
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def psql(self, sql: str) -> str:
        """Run SQL in the `mlflow` database as the postgres superuser, over the unix socket."""
        pgdata = (self.state / "pgdata").resolve()
        version = (pgdata / "PG_VERSION").read_text().strip()
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{version}/bin/psql",
             "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str((self.state / "pgrun").resolve()),
             "-p", str(self.pg_port), "-d", "mlflow", "-c", sql],
            capture_output=True, text=True, timeout=60, cwd="/")
        assert proc.returncode == 0, f"psql failed: {proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The server, started once for the session and stopped at its end."""
    env = dict(os.environ)
    env["BENCH_PYTHON"] = sys.executable  # the server runs this venv's mlflow
    try:  # stop.sh also after a failed start: it may have got half-way
        uri = start(env)
        out = subprocess.run(
            ["bash", "-c", 'source "$1" && echo "$BENCH_MLFLOW_DIR" && echo "$_bench_pg_port"',
             "env.sh", str(SCRIPTS / "env.sh")],
            capture_output=True, text=True, env=env, check=True).stdout.split("\n")
        yield Server(uri, Path(out[0]), int(out[1]), env)
    finally:
        stop = script("stop.sh", env)
        assert stop.returncode == 0, f"stop.sh failed:\n{stop.stdout}\n{stop.stderr}"
