"""``bench bisect`` against a small git repository made here, whose benchmark gets slower at
one commit: the first bad commit is named after about log2 of the commits were tested,
every run is recorded with its tags; a step that does not reproduce and bad input stop
with one line."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, Store, child_env

pytestmark = pytest.mark.e2e
#: The benchmark: sleeps, then prints the time it meant to sleep, give or take 1% (its
#: own clock would add the scheduling delays of a loaded host to a 10 ms sleep).
BENCH = ("import json, random, time\ntime.sleep({seconds})\n"
         "value = {seconds} * random.uniform(1.0, 1.01)\n"
         "print(json.dumps({{'name': 't', 'value': value, 'unit': 's'}}))\n")
#: Commits c0..c5; from c3 on the benchmark sleeps ten times longer.
SLOWER_AT = 3


def git(*args: str, cwd: Path) -> str:
    env = {**child_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The benchmarked repository and its commits, oldest first."""
    repo = tmp_path_factory.mktemp("code")
    git("init", "-q", "-b", "main", cwd=repo)
    commits = []
    for i in range(6):
        (repo / "bench.py").write_text(BENCH.format(seconds=0.1 if i >= SLOWER_AT else 0.01))
        with (repo / "notes.txt").open("a") as notes:
            notes.write(f"change {i}\n")
        git("add", "-A", cwd=repo)
        git("commit", "-qm", f"change {i}" + (" (slower)" if i == SLOWER_AT else ""), cwd=repo)
        commits.append(git("rev-parse", "HEAD", cwd=repo))
    return repo, commits


def bisect(tmp: Path, store: Store, repo: Path, good: str, bad: str,
           suite: Path | None = None) -> subprocess.CompletedProcess:
    if suite is None:
        suite = tmp / "suite.yaml"
        suite.write_text(
            "experiments:\n  - [bench=command, \"bench.command='{python} ${BENCH_TARGET}/"
            f"bench.py'\", bench.trials=3, hydra.run.dir={tmp}/outputs]\n")
    argv = [sys.executable, "-m", "runners.cli", "bisect", "--repo", str(repo), "--good", good,
            "--bad", bad, "--suite", str(suite), "--tracking-uri", store.uri,
            "--artifact-root", str(store.artifacts), "--cache", str(tmp / "cache")]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=ROOT,
                          timeout=600)


def test_bisect_names_the_first_bad_commit_and_records_every_run(
        tmp_path: Path, store: Store, code: tuple[Path, list[str]]) -> None:
    repo, commits = code
    proc = bisect(tmp_path, store, repo, commits[0], "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    culprit = commits[SLOWER_AT]
    found = re.search(r"^bisect (\w{12}): first bad commit (\w{40}) (.*)$", proc.stdout, re.M)
    assert found, proc.stdout
    bisect_id = found.group(1)
    assert found.group(2) == culprit and found.group(3) == f"change {SLOWER_AT} (slower)"
    assert "t.median of command (lower is better)" in proc.stdout

    runs = [r for r in store.runs("command") if r.data.tags.get("bisect.id") == bisect_id]
    tested = {r.data.tags["target_commit"] for r in runs}
    assert len(runs) == len(tested)                      # one run per commit measured
    assert {commits[0], commits[-1]} <= tested           # both ends
    between = len(commits) - 1                           # revisions git bisects over
    assert 1 <= len(tested) - 2 <= math.ceil(math.log2(between))
    for run in runs:
        tags = run.data.tags
        index = commits.index(tags["target_commit"])
        assert tags["bisect.judged"] == ("bad" if index >= SLOWER_AT else "good")
        assert tags["bisect.result"] == culprit and tags["target_ref"] == "bisect"
        assert tags["bisect.good"] == commits[0] and tags["bisect.bad"] == commits[-1]
        assert run.info.status == "FINISHED" and run.info.run_id[:12] in proc.stdout
        # the table has the commit's row with its level
        row = next(line for line in proc.stdout.splitlines()
                   if line.startswith(tags["target_commit"][:12]))
        assert f"{run.data.metrics['t.median']:.4g} s" in row
    assert f"{len(runs)} runs, tagged bisect.id={bisect_id}" in proc.stdout


def test_a_step_that_does_not_reproduce_stops_with_one_line(
        tmp_path: Path, store: Store, code: tuple[Path, list[str]]) -> None:
    repo, commits = code
    proc = bisect(tmp_path, store, repo, commits[0], commits[SLOWER_AT - 1])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"bisect: the step does not reproduce at the ends: good 0\.010\d* s, "
                        r"bad 0\.010\d* s \([+-]\d+%\); (a step needs a change of at least "
                        r"5% for the worse|the bad end is better \(lower is better\))", last), last
    runs = store.runs("command")
    assert len(runs) == 2 and {r.data.tags["bisect.result"] for r in runs} == {"no step"}


def test_a_suite_that_fails_at_the_good_end_stops_with_exit_3(
        tmp_path: Path, store: Store, code: tuple[Path, list[str]]) -> None:
    repo, commits = code
    suite = tmp_path / "failing.yaml"
    suite.write_text("experiments:\n  - [bench=command, \"bench.command='{python} "
                     f"${{BENCH_TARGET}}/missing.py'\", hydra.run.dir={tmp_path}/outputs]\n")
    proc = bisect(tmp_path, store, repo, commits[0], commits[-1], suite)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == (
        f"bisect: no finished run measured anything at the good end {commits[0][:12]}; "
        "see the failures above")
    assert "failed (exit 1)" in proc.stdout
    [run] = store.runs("command")                        # the bad end was not run
    assert run.info.status == "FAILED" and run.data.tags["bisect.result"] == "unfinished"


@pytest.mark.parametrize("case", ["unknown good", "not an ancestor", "missing suite"])
def test_bad_input_is_one_line_and_writes_nothing(
        tmp_path: Path, store: Store, code: tuple[Path, list[str]], case: str) -> None:
    repo, commits = code
    good, bad, suite = commits[0], commits[-1], None
    if case == "unknown good":
        good = "0123abc"
        expected = f"error: --good commit '0123abc' not found in {repo}"
    elif case == "not an ancestor":
        good, bad = bad, good
        expected = (f"error: --good {good} ({good[:12]}) is not an ancestor of --bad {bad} "
                    f"({bad[:12]}); bisect needs an older good commit on the bad commit's "
                    "history")
    else:
        suite = tmp_path / "missing.yaml"
        expected = f"error: no suite file {suite}; see conf/nightly/example.yaml"
    proc = bisect(tmp_path, store, repo, good, bad, suite)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [expected]
    assert not store.db.exists()
