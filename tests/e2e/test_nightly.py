"""``bench nightly`` against a small git repository made here: clone, suite, regress,
report, publish; its exit code says whether a regression was found."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, HttpReceiver, Store, child_env

pytestmark = pytest.mark.e2e
BENCH = 'import json; print(json.dumps({{"name": "t", "value": {value}, "unit": "s"}}))\n'


def git(*args: str, cwd: Path) -> str:
    env = {**child_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def commit_bench(repo: Path, value: float) -> str:
    (repo / "bench.py").write_text(BENCH.format(value=value))
    git("add", "bench.py", cwd=repo)
    git("commit", "-qm", f"value {value}", cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def nightly(tmp: Path, store: Store, target: Path, results: Path,
            *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "runners.cli", "nightly", "--repo", str(target),
            "--ref", "main", "--suite", str(tmp / "suite.yaml"), "--tracking-uri", store.uri,
            "--artifact-root", str(store.artifacts), "--report-dir", str(tmp / "report"),
            "--results-repo", str(results), "--cache", str(tmp / "cache"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=ROOT,
                          timeout=600)


def test_nightly_runs_the_suite_reports_publishes_and_flags_a_regression(
        tmp_path: Path, store: Store, http_receiver: HttpReceiver) -> None:
    target, results = tmp_path / "code", tmp_path / "results"
    for repo in (target, results):
        repo.mkdir()
        git("init", "-q", "-b", "main", cwd=repo)
    (results / "README").write_text("results\n")
    git("add", "README", cwd=results)
    git("commit", "-qm", "start", cwd=results)
    first = commit_bench(target, 1.0)
    (tmp_path / "suite.yaml").write_text(
        "experiments:\n  - [bench=command, \"bench.command='{python} ${BENCH_TARGET}/bench.py'\","
        " bench.trials=2, +tags.suite=test]\n")

    proc = nightly(tmp_path, store, target, results)
    assert proc.returncode == 0, proc.stdout + proc.stderr       # not enough data: no verdict
    [run] = store.runs("command")
    assert run.info.status == "FINISHED"
    assert run.data.tags["target_commit"] == first and run.data.metrics["t.median"] == 1.0
    assert (tmp_path / "report" / "index.html").is_file()
    assert git("rev-parse", "--verify", "results/local", cwd=results)
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=results) == "main"   # untouched

    # history: 20 older runs at 1.0 s, then 4 newer at 2.0 s, all of the same series
    client = store.client()
    found = client.get_experiment_by_name("command")
    assert found is not None
    exp = found.experiment_id
    keep = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    t_run = run.info.start_time
    for i, (value, t) in enumerate([(1.0, t_run - 86_400_000 * (20 - i)) for i in range(20)]
                                   + [(2.0, t_run + 1000 * (i + 1)) for i in range(4)]):
        seeded = client.create_run(exp, start_time=t, tags={**keep, "seeded": str(i)})
        client.log_metric(seeded.info.run_id, "t.median", value + 0.001 * (i % 3))
        client.set_terminated(seeded.info.run_id, end_time=t + 100)
    time.sleep(1.0)
    commit_bench(target, 2.0)

    proc = nightly(tmp_path, store, target, results, "--notify", http_receiver.url)
    assert proc.returncode == 1, proc.stdout + proc.stderr       # a regression was found
    [sent] = http_receiver.requests                              # one message, for one step
    [alert] = sent.json()["alerts"]
    assert alert["metric"] == "t.median" and alert["change"] > 0.5
    assert (tmp_path / "report" / "index.html").as_uri() in sent.json()["text"]
    assert "regression" in proc.stdout
    newest = store.runs("command")[0]
    assert newest.data.tags["target_commit"] != first
    assert newest.data.tags["regress.t.median"] == "regression"


def test_nightly_bad_input_is_one_line(tmp_path: Path, store: Store) -> None:
    argv = [sys.executable, "-m", "runners.cli", "nightly", "--repo", str(tmp_path / "none"),
            "--suite", str(tmp_path / "missing.yaml"), "--tracking-uri", store.uri]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no suite file {tmp_path / 'missing.yaml'}; see conf/nightly/example.yaml"]


@pytest.mark.parametrize(("extra", "words"), [
    (["--confirm", "0"], "--confirm '0' is not a whole number >= 1"),
    (["--notify", "ftp://example.org/x"], "is not supported; give an http"),
])
def test_nightly_checks_confirm_and_notify_before_running(
        tmp_path: Path, store: Store, extra: list[str], words: str) -> None:
    argv = [sys.executable, "-m", "runners.cli", "nightly", "--repo", str(tmp_path / "none"),
            "--suite", str(tmp_path / "missing.yaml"), "--tracking-uri", store.uri, *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=ROOT)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line
    assert not store.db.exists()
