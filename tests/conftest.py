"""Shared fixtures: a temporary MLflow store, a run.py runner, the session's MLflow server,
the fault-injection table and the receivers of notifications (``http_receiver``,
``smtp_sink``).  Helpers are in :mod:`tests.support`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support import (
    ROOT,
    SCRIPTS,
    HttpReceiver,
    Proxy,
    RunPy,
    Server,
    SiteAgent,
    SmtpSink,
    Store,
    child_env,
    script,
    start,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh SQLite store under the test's temporary directory."""
    db = tmp_path / "mlruns" / "mlflow.db"
    return Store(f"sqlite:///{db}", tmp_path / "mlruns" / "artifacts", db)


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


@pytest.fixture
def site_agent(tmp_path: Path, store: Store,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., SiteAgent]]:
    """``site_agent(name="local", *overrides)``: an agent of a site on ``store``, with its
    files under tmp_path (``BENCH_SITE_DIR``, also for run.py), started, and stopped at the
    end of the test."""
    monkeypatch.setenv("BENCH_SITE_DIR", str(tmp_path / "sites"))
    agents: list[SiteAgent] = []

    def make(name: str = "local", *overrides: str, start: bool = True) -> SiteAgent:
        agent = SiteAgent(name, tmp_path / "sites", [*store.overrides(), *overrides])
        agents.append(agent)
        if start:
            agent.start()
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture(autouse=True)
def _isolated_hydra(hydra_restore_singletons: None) -> None:
    """Hydra's global state (version base, config store) does not leak between tests."""


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


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    """A cuttable TCP path to the session's server (``proxy.down()`` cuts it)."""
    url = urlparse(server.uri)
    fwd = Proxy(url.hostname or "127.0.0.1", int(url.port or 80)).up()
    yield fwd
    fwd.down()


#: Rows of the fault-injection suite (tests/server/test_faults.py), printed at the end.
FAULTS: list[tuple[str, int, int, int]] = []


@pytest.fixture
def fault_report() -> Callable[[str, int, int, int], None]:
    """Record a fault scenario's figures (runs started, runs recorded, results lost, each
    counted from the store) and fail unless every started run was recorded and no result
    was lost."""

    def record(scenario: str, started: int, recorded: int, lost: int) -> None:
        FAULTS.append((scenario, started, recorded, lost))
        assert recorded == started, f"{scenario}: {started} runs started, {recorded} recorded"
        assert lost == 0, f"{scenario}: {lost} results lost"

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


@pytest.fixture
def http_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    """A webhook receiver on 127.0.0.1 recording every request (``.url``, ``.requests``,
    ``.replies`` to answer in order, ``.delay``); a proxy set in the environment is not
    used for it."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping the mails it accepts
    (``.mails``, ``.env`` with the BENCH_SMTP_* variables pointing at it, ``.replies``,
    ``.refuse``, ``.logins``)."""
    with SmtpSink() as sink:
        yield sink
