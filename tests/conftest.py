"""Shared fixtures: the project root, a temporary MLflow store and a run.py runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import server  # noqa: F401 - the session's MLflow server fixture

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


#: Rows of the fault-injection suite (tests/test_faults.py), printed at the end of the run.
FAULTS: list[tuple[str, int, int, int]] = []


@pytest.fixture
def fault_report() -> Callable[[str, int, int, int], None]:
    """Record a fault scenario's figures: runs started, runs recorded, results lost."""

    def record(scenario: str, started: int, recorded: int, lost: int) -> None:
        FAULTS.append((scenario, started, recorded, lost))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault-injection table: every scenario with runs started / recorded / lost."""
    if not FAULTS:
        return
    tr = terminalreporter
    tr.section("fault injection: runs started / runs recorded / results lost")
    width = max(len(s) for s, *_ in FAULTS)
    tr.write_line(f"{'scenario':<{width}}  started  recorded  lost")
    for scenario, started, recorded, lost in FAULTS:
        tr.write_line(f"{scenario:<{width}}  {started:>7}  {recorded:>8}  {lost:>4}")
    tr.write_line(f"total lost: {sum(f[3] for f in FAULTS)}")
