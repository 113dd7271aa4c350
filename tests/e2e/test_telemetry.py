"""Per-node telemetry on machine=local: one sampler beside the trials, its samples as
per-host curves and summaries, its file as an artifact, nothing left running after."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from tests.support import RunPy, Store

pytestmark = pytest.mark.e2e


def samplers() -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "runners.stages.telemetry" in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_telemetry_samples_each_node_while_the_trials_run(run_py: RunPy, store: Store) -> None:
    before = samplers()
    run_py("bench=sleep", "bench.params.seconds=1.5", "bench.trials=2", "telemetry.enabled=true",
           "telemetry.interval_s=0.5", *store.overrides(), check=True)
    [run] = store.runs("sleep")
    host = socket.gethostname()
    m, t = run.data.metrics, run.data.tags
    assert m["telemetry.nodes"] == 1
    assert 0 <= m[f"telemetry.{host}.cpu_pct_mean"] <= m[f"telemetry.{host}.cpu_pct_max"] <= 100
    assert 0 < m[f"telemetry.{host}.mem_pct_max"] <= 100
    assert t["telemetry.gpu"].startswith("no ")        # no GPU here: said, not an error
    curve = store.client().get_metric_history(run.info.run_id, f"telemetry.{host}.cpu_pct")
    assert len(curve) >= 4                              # ~3 s of trials, every 0.5 s
    files = [f.path for f in store.client().list_artifacts(run.info.run_id, "logs/telemetry")]
    assert f"logs/telemetry/telemetry.{host}.csv" in files
    deadline = time.monotonic() + 10
    while set(samplers()) - set(before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(samplers()) - set(before)            # the sampler was stopped


def test_telemetry_is_off_unless_asked(run_py: RunPy, store: Store) -> None:
    run_py("bench=sleep", "bench.params.seconds=0", "bench.trials=1", *store.overrides(),
           check=True)
    [run] = store.runs("sleep")
    assert not any(k.startswith("telemetry.") for k in run.data.metrics)
