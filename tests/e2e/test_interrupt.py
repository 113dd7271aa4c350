"""Ctrl-C and SIGTERM sent to the whole process group, as a terminal and ``kill -- -PGID``
do (the driver, Parsl's interchange and its worker pool all get the signal): the run or
sweep ends KILLED and ``run.py`` exits 130 at once, prints no traceback and leaves no
Parsl process behind.  (Signalling only the driver's pid, as older tests do, never hit
the interchange, and so missed the hang in Parsl's clean-up.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support import ROOT, Store, child_env

pytestmark = pytest.mark.e2e


def _marked(marker: str) -> list[int]:
    """Live processes started by the driver (they carry its BENCH_DRIVER marker)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BENCH_DRIVER") == marker and proc.status() != "zombie":
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_signal_to_the_process_group_ends_it_killed_at_once(
        store: Store, tmp_path: Path, sig: signal.Signals, sweep: bool) -> None:
    argv = [sys.executable, str(ROOT / "run.py"), *(["-m"] if sweep else []), "bench=sleep",
            "bench.params.seconds=60", "bench.trials=1", *store.overrides(),
            f"hydra.run.dir={tmp_path}/out", f"hydra.sweep.dir={tmp_path}/m"]
    store.client().search_experiments()     # the schema exists before the test polls it
    proc = subprocess.Popen(argv, env=child_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                r.info.status == "RUNNING" and "driver.parsl_pids" in r.data.tags
                for r in store.runs("sleep")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        time.sleep(3)                       # the trial is running on a worker
        os.killpg(proc.pid, sig)
        # The hang this guards against lasted for ever; 60 s is only a bound.
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    runs = store.runs("sleep")
    assert runs and {r.info.status for r in runs} == {"KILLED"}
    run = next(r for r in runs if "driver.pid" in r.data.tags)
    marker = ":".join(run.data.tags[f"driver.{k}"] for k in ("host", "pid", "started"))
    deadline = time.monotonic() + 10
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _marked(marker)              # no worker pool or trial left
    for item in filter(None, run.data.tags.get("driver.parsl_pids", "").split(",")):
        pid, started = item.split("@")
        assert not (psutil.pid_exists(int(pid))
                    and f"{psutil.Process(int(pid)).create_time():.2f}" == started)
