"""Shared fixtures: the project root, a temporary MLflow store and a run.py runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Store:
    """A temporary SQLite MLflow store."""

    uri: str
    artifacts: Path
    db: Path

    def overrides(self) -> list[str]:
        """Hydra overrides that point run.py at this store."""
        return [f"tracking.uri={self.uri}", f"tracking.artifact_root={self.artifacts}"]

    def client(self):  # noqa: ANN201 - mlflow is imported lazily
        """An MlflowClient on this store."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str = "mpi4py_import") -> list:
        """All runs of an experiment (newest first); [] if it does not exist."""
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return list(client.search_runs([exp.experiment_id], order_by=["start_time DESC"]))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh SQLite store under the test's temporary directory."""
    db = tmp_path / "mlruns" / "mlflow.db"
    return Store(f"sqlite:///{db}", tmp_path / "mlruns" / "artifacts", db)


def child_env() -> dict[str, str]:
    """The environment for run.py subprocesses: the venv's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("HYDRA_FULL_ERROR", None)
    return env


RunPy = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_py(tmp_path: Path) -> RunPy:
    """Run ``python run.py <args>`` in a subprocess with outputs under tmp_path."""

    def run(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(ROOT / "run.py"), *args,
                f"hydra.run.dir={tmp_path}/outputs/run", f"hydra.sweep.dir={tmp_path}/multirun"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_env(), cwd=tmp_path)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"run.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(autouse=True)
def _isolated_hydra(hydra_restore_singletons: None) -> None:
    """Hydra's global state (version base, config store) does not leak between tests."""
