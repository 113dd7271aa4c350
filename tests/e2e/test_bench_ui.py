"""``bench ui`` as a benchmark user meets it: the MLflow UI opens the experiment in its
model-training view (runs, metrics), not the GenAI one, in a real headless Chromium; and
stopping ``bench ui`` leaves no process behind (no job-execution workers are started)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import psutil
import pytest

from runners.tracking.server import ui_url
from runners.tracking.tracker import Tracker
from tests.support import Store, child_env, chromium

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(sid: int) -> list[psutil.Process]:
    """The live processes of a session (bench ui runs in its own)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and \
                    os.getsid(proc.pid) == sid:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def text_of(url: str) -> str:
    """The visible text of a page once its scripts ran."""
    done = chromium("--virtual-time-budget=15000", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_bench_ui_opens_runs_in_the_model_training_view(store: Store) -> None:
    tracker = Tracker(store.uri, str(store.artifacts))
    run_id = tracker.start_run("ui-view", "ui-run-1", {"bench.ranks": "2"}, {"machine": "m"})
    tracker.log_metrics(run_id, {"total_s.median": 1.25})
    tracker.end_run(run_id)
    exp = store.client().get_experiment_by_name("ui-view")
    assert exp is not None and exp.tags["mlflow.experimentKind"] == "custom_model_development"
    port = free_port()
    ui = subprocess.Popen(["bench", "ui", "--tracking-uri", store.uri, "--artifact-root",
                           str(store.artifacts), "--port", str(port)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=child_env(),
                          start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        assert ui.stdout is not None
        assert ui_url("127.0.0.1", port, "experiments") in ui.stdout.readline()
        names = " ".join(" ".join(p.cmdline()) for p in session(ui.pid))
        assert "uvicorn" in names and "huey" not in names and "_job_runner" not in names
        page = text_of(ui_url("127.0.0.1", port, f"experiments/{exp.experiment_id}/runs"))
        assert "Model training" in page and "ui-run-1" in page, page[:2000]
        assert "Evaluation runs" not in page and "Sessions" not in page     # GenAI's view
        run = text_of(ui_url("127.0.0.1", port,
                             f"experiments/{exp.experiment_id}/runs/{run_id}"))
        assert "total_s.median" in run and "1.25" in run, run[:2000]
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
    deadline = time.monotonic() + 30
    while session(ui.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session(ui.pid) == [], [p.cmdline() for p in session(ui.pid)]
