"""``bench regress --confirm N``: a suspected regression is rerun through run.py, the
reruns are ordinary runs tagged ``confirm.of``, and the verdict says what they found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Store, child_env

pytestmark = pytest.mark.e2e
#: A benchmark whose result is read from a file: the config (and config.hash) stays the
#: same while what it measures changes.
BENCH = ('import json, pathlib; print(json.dumps({"name": "t", "unit": "s", "value": '
         'float(pathlib.Path(__file__).with_name("value").read_text())}))\n')


def regress(store: Store, *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "runners.cli", "regress", "--tracking-uri", store.uri,
            "--experiment", "command", "--against", "reference", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=cwd,
                          timeout=600)


def test_confirm_reruns_and_confirms_or_refutes(tmp_path: Path, store: Store,
                                                run_py) -> None:
    script, value = tmp_path / "bench.py", tmp_path / "value"
    script.write_text(BENCH)
    args = ["bench=command", f"bench.command='{{python}} {script}'", "bench.trials=2",
            *store.overrides()]
    value.write_text("1.0")
    run_py(*args, check=True)
    [first] = store.runs("command")
    # history: 10 older runs of the same series around 1.0
    client, keep = store.client(), {k: v for k, v in first.data.tags.items()
                                    if not k.startswith("mlflow.")}
    for i in range(10):
        t = first.info.start_time - 3_600_000 * (10 - i)
        seeded = client.create_run(first.info.experiment_id, start_time=t, tags=keep)
        client.log_metric(seeded.info.run_id, "t.median", 1.0 + 0.002 * (i % 3 - 1))
        client.set_terminated(seeded.info.run_id, end_time=t + 100)
    value.write_text("2.0")
    run_py(*args, check=True)
    suspect = store.runs("command")[0]
    assert suspect.data.metrics["t.median"] == 2.0

    proc = regress(store, "--confirm", "2", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "confirmed by 2 rerun(s)" in proc.stdout
    reruns = [r for r in store.runs("command") if r.data.tags.get("confirm.of")]
    assert len(reruns) == 2
    assert {r.data.tags["confirm.of"] for r in reruns} == {suspect.info.run_id}
    for rerun in reruns:   # ordinary runs of the same series
        assert rerun.info.status == "FINISHED" and rerun.data.metrics["t.median"] == 2.0
        assert rerun.data.tags["config.hash"] == suspect.data.tags["config.hash"]
        assert rerun.data.tags["machine"] == "local"
    assert client.get_run(suspect.info.run_id).data.tags["regress.t.median"] == "regression"

    # the step was a fluke: the reruns measure the old level and refute it
    value.write_text("1.0")
    proc = regress(store, "--confirm", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 refuted" in proc.stdout
    newest = [r for r in store.runs("command") if r.data.tags.get("confirm.of")]
    assert len(newest) == 4
    judged = reruns[0].info.run_id if reruns[0].info.start_time > reruns[1].info.start_time \
        else reruns[1].info.run_id
    assert client.get_run(judged).data.tags["regress.t.median"] == "refuted"
