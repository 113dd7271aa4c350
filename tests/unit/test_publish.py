"""``bench publish`` / ``bench import``: real git repositories and SQLite stores under tmp_path."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runners.cli.publish import add_parser
from runners.publish.records import redact
from runners.tracking.history import artifact_uris, download_run_artifacts, metric_histories
from runners.tracking.query import StoreReader
from runners.tracking.redact import REDACTED
from runners.tracking.tracker import Tracker

EXP = "mpi4py_import"
SECRET = "s3cr3t-t0ken-value-42"


@pytest.fixture(autouse=True)
def _no_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a CI machine: no global or system git config, so no user identity."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    """Run git in repo (with a test identity for the user's own commits); its stdout."""
    argv = ["git", "-C", str(repo), "-c", "user.name=Tester", "-c", "user.email=t@example.org",
            *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def bench(*argv: str) -> int:
    """Run a verb in-process, as ``bench`` would."""
    parser = argparse.ArgumentParser()
    verbs = parser.add_subparsers(dest="verb")
    add_parser(verbs)
    args = parser.parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh, empty git repository."""
    path = tmp_path / "results-repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def uri_of(tmp_path: Path, name: str = "src") -> str:
    return f"sqlite:///{tmp_path / name / 'mlflow.db'}"


def make_run(tmp_path: Path, machine: str = "local", status: str = "FINISHED",
             tags: dict[str, str] | None = None, experiment: str = EXP) -> str:
    """One run in the source store: params, tags, a metric history, an artifact."""
    tracker = Tracker(uri_of(tmp_path), artifact_root=str(tmp_path / "src" / "artifacts"))
    run_id = tracker.start_run(experiment, "job", {"bench.ranks": "2", "config.hash": "abc"},
                               {"machine": machine, "fs": "nfs", **(tags or {})})
    for step, value in enumerate((3.0, 2.0, 1.5)):
        tracker.log_metrics(run_id, {"total_s": value}, step=step)
    tracker.log_metrics(run_id, {"total_s.median": 2.0, "ranks_seen": 2.0})
    per_rank = tmp_path / "per_rank.csv"
    per_rank.write_text("rank,t\n0,1.0\n")
    tracker.log_artifacts(run_id, [str(per_rank)], "results")
    tracker.end_run(run_id, status)
    return run_id


def points(client: Any, run_id: str, key: str) -> list[tuple[int, float, int]]:
    """Every point of a metric: (step, value, timestamp), sorted."""
    return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key))


def publish(repo: Path, tmp_path: Path, *extra: str) -> int:
    return bench("publish", "--repo", str(repo), "--tracking-uri", uri_of(tmp_path), *extra)


def tip(repo: Path, branch: str = "results/local") -> str:
    return git(repo, "rev-parse", f"refs/heads/{branch}")


def branch_files(repo: Path, branch: str = "results/local") -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", branch).splitlines()


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_round_trip(tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [make_run(tmp_path), make_run(tmp_path, status="FAILED"), make_run(tmp_path)]
    assert publish(repo, tmp_path) == 0
    assert "3 runs added, 0 updated" in capsys.readouterr().out
    files = branch_files(repo)
    assert sorted(files) == sorted([".bench-results", "summary.csv",
                                    *(f"runs/{EXP}/{i}.json" for i in ids),
                                    *(f"artifacts/{EXP}/{i}/results/per_rank.csv"
                                      for i in ids)])
    message = git(repo, "log", "-1", "--format=%B", "results/local")
    assert message.startswith(f"bench publish: 3 runs added, 0 updated ({EXP} on local)")
    assert all(i in message for i in ids)
    assert git(repo, "log", "-1", "--format=%an <%ae>", "results/local") == \
        "bench publish <bench@localhost>"
    record = json.loads(git(repo, "show", f"results/local:runs/{EXP}/{ids[0]}.json"))
    assert record["format"] == 2 and record["metrics"]["total_s"] == 1.5
    assert [(s, v) for s, v, _t in record["history"]["total_s"]] == [(0, 3.0), (1, 2.0),
                                                                     (2, 1.5)]
    assert record["artifacts"] == [{"path": "results/per_rank.csv", "size": 13, "stored": True,
                                    "sha256": hashlib.sha256(b"rank,t\n0,1.0\n").hexdigest()}]
    summary = git(repo, "show", "results/local:summary.csv").splitlines()
    assert summary[0] == "run_id,experiment,status,start_time,machine,fs,total_s.median"
    assert len(summary) == 4 and any(ids[1] in row and "FAILED" in row for row in summary)

    dest = uri_of(tmp_path, "dest")
    assert bench("import", "--repo", str(repo), "--tracking-uri", dest) == 0
    assert capsys.readouterr().out.startswith("3 imported, 0 already present")
    assert (tmp_path / "dest" / "artifacts" / EXP).is_dir()     # beside the store's file
    source, target = StoreReader(uri_of(tmp_path)).client, StoreReader(dest).client
    exp = target.get_experiment_by_name(EXP)
    assert exp is not None
    copies = {r.data.tags["import.source_run_id"]: r
              for r in target.search_runs([exp.experiment_id])}
    assert sorted(copies) == sorted(ids)
    for run_id in ids:
        old, new = source.get_run(run_id), copies[run_id]
        assert new.data.params == old.data.params
        assert new.data.metrics == old.data.metrics
        for key in old.data.metrics:
            assert points(target, new.info.run_id, key) == points(source, run_id, key)
        assert new.data.tags["import.source_format"] == "2"
        assert Path(target.download_artifacts(new.info.run_id, "results/per_rank.csv",
                                              str(tmp_path / run_id))).read_text() == \
            "rank,t\n0,1.0\n"
        assert {k: v for k, v in new.data.tags.items() if not k.startswith("import.")} == \
            old.data.tags
        assert (new.info.status, new.info.start_time, new.info.end_time) == \
            (old.info.status, old.info.start_time, old.info.end_time)

    assert bench("import", "--repo", str(repo), "--tracking-uri", dest) == 0
    assert capsys.readouterr().out.startswith("0 imported, 3 already present")
    assert len(target.search_runs([exp.experiment_id])) == 3


def test_publish_twice_adds_nothing(tmp_path: Path, repo: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path)
    make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    first = tip(repo)
    capsys.readouterr()
    assert publish(repo, tmp_path) == 0
    assert "nothing new to publish" in capsys.readouterr().out
    assert tip(repo) == first


def test_second_publish_keeps_earlier_runs(tmp_path: Path, repo: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    first_id = make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    first = tip(repo)
    second_id = make_run(tmp_path)
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "plots" / "a.txt").write_text("plot\n")
    assert publish(repo, tmp_path, "--run-id", second_id[:10], "--report-dir", str(report)) == 0
    assert git(repo, "rev-parse", "results/local^") == first
    assert git(repo, "log", "-1", "--format=%s", "results/local") == \
        f"bench publish: 1 run added, 0 updated, report updated ({EXP} on local)"
    files = branch_files(repo)
    assert {f"runs/{EXP}/{first_id}.json", f"runs/{EXP}/{second_id}.json",
            "report/plots/a.txt", "summary.csv", ".bench-results",
            *(f"artifacts/{EXP}/{i}/results/per_rank.csv" for i in (first_id, second_id))} == \
        set(files)
    assert len(git(repo, "show", "results/local:summary.csv").splitlines()) == 3

    Tracker(uri_of(tmp_path)).set_tags(first_id, {"note": "rerun"})
    capsys.readouterr()
    assert publish(repo, tmp_path, "--message", "nightly results") == 0
    assert "0 runs added, 1 updated" in capsys.readouterr().out
    body = git(repo, "log", "-1", "--format=%B", "results/local")
    assert body.startswith("nightly results\n") and f"updated {first_id}" in body
    assert "report/plots/a.txt" in branch_files(repo)


def test_user_repo_untouched(tmp_path: Path, repo: Path) -> None:
    (repo / "a.txt").write_text("one\n")
    (repo / "b.txt").write_text("two\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    git(repo, "checkout", "-q", "-b", "work")
    (repo / "a.txt").write_text("dirty\n")
    (repo / "b.txt").write_text("staged\n")
    git(repo, "add", "b.txt")
    (repo / "new.txt").write_text("untracked\n")
    index = repo / ".git" / "index"

    def state() -> tuple[str, ...]:
        return (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD"),
                git(repo, "symbolic-ref", "HEAD"), index.read_bytes().hex(),
                (repo / "a.txt").read_text(), git(repo, "stash", "list"))

    before = state()
    make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    assert state() == before
    assert "runs" not in {p.name for p in repo.iterdir()}
    assert len(branch_files(repo)) == 4


def test_foreign_branch_refused(tmp_path: Path, repo: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "x.txt").write_text("x\n")
    git(repo, "add", "x.txt")
    git(repo, "commit", "-q", "-m", "foreign")
    git(repo, "branch", "results/local")
    before = tip(repo)
    make_run(tmp_path)
    capsys.readouterr()
    assert publish(repo, tmp_path) == 2
    assert ".bench-results" in one_error_line(capsys.readouterr().err)
    assert tip(repo) == before
    assert bench("import", "--repo", str(repo), "--tracking-uri", uri_of(tmp_path, "d")) == 2
    one_error_line(capsys.readouterr().err)


def test_checked_out_branch_refused(tmp_path: Path, repo: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    git(repo, "checkout", "-q", "-b", "results/local")
    make_run(tmp_path)
    capsys.readouterr()
    assert publish(repo, tmp_path) == 2
    assert "checked out" in one_error_line(capsys.readouterr().err)


def test_bad_input(tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    make_run(tmp_path)
    capsys.readouterr()
    assert publish(plain, tmp_path) == 2
    assert "not a git repository" in one_error_line(capsys.readouterr().err)
    assert publish(repo, tmp_path, "--where", "machine=nowhere") == 2
    assert "no runs selected" in one_error_line(capsys.readouterr().err)
    assert publish(repo, tmp_path, "--experiment", "nope") == 2
    assert "no experiment 'nope'" in one_error_line(capsys.readouterr().err)
    assert publish(repo, tmp_path, "--run-id", "zzzz") == 2
    one_error_line(capsys.readouterr().err)
    assert publish(repo, tmp_path, "--branch", "bad..name") == 2
    one_error_line(capsys.readouterr().err)
    assert publish(repo, tmp_path, "--redact", "(") == 2
    one_error_line(capsys.readouterr().err)
    assert bench("publish", "--repo", str(repo), "--tracking-uri", uri_of(tmp_path, "none")) == 2
    assert "no store" in one_error_line(capsys.readouterr().err)
    assert git(repo, "for-each-ref") == ""
    assert bench("import", "--repo", str(repo), "--tracking-uri", uri_of(tmp_path, "d")) == 2
    one_error_line(capsys.readouterr().err)


def test_redaction(tmp_path: Path, repo: Path) -> None:
    """Publish redacts by itself: the store holds the secrets in clear (written past the
    tracker's redaction, as an older store or another tool would have them)."""
    run_id = make_run(tmp_path)
    client = StoreReader(uri_of(tmp_path)).client
    for key, value in {"env.API_TOKEN": SECRET, "site.cookie": "c00kie-jar-99",
                       "failure.message": f"denied for {SECRET}"}.items():
        client.set_tag(run_id, key, value)
    log = tmp_path / "stdout.log"
    log.write_text(f"connecting with {SECRET}\n")
    client.log_artifact(run_id, str(log), "logs")
    assert client.get_run(run_id).data.tags["env.API_TOKEN"] == SECRET
    assert publish(repo, tmp_path, "--redact", "cookie") == 0
    record = json.loads(git(repo, "show", f"results/local:runs/{EXP}/{run_id}.json"))
    assert record["tags"]["env.API_TOKEN"] == REDACTED
    assert record["tags"]["site.cookie"] == REDACTED
    assert record["tags"]["failure.message"] == f"denied for {REDACTED}"
    assert record["params"]["config.hash"] == "abc"
    [entry] = [a for a in record["artifacts"] if a["path"] == "logs/stdout.log"]
    assert entry["redacted"] and git(repo, "show", f"results/local:artifacts/{EXP}/{run_id}/"
                                     "logs/stdout.log") == f"connecting with {REDACTED}"
    blobs = git(repo, "ls-tree", "-r", "--format=%(objectname)", "results/local").split()
    text = "".join(git(repo, "cat-file", "blob", b) for b in blobs)
    text += git(repo, "log", "--format=%B", "results/local")
    assert SECRET not in text and "c00kie" not in text
    assert subprocess.run(["git", "-C", str(repo), "grep", "-q", SECRET, "results/local"],
                          check=False).returncode == 1


def test_redact_pattern() -> None:
    keys = ["env.API_TOKEN", "env.APIKEY", "aws.secret_access_key", "db.password", "apiKey",
            "user.credentials", "config.hash", "env.hash", "tokenizer.name", "monkey"]
    records = [{"params": {k: "value-long-enough" for k in keys}, "tags": {}}]
    hits = redact(records)
    assert hits == sorted(f"params.{k}" for k in keys[:6])


def rewrite_record(repo: Path, tmp_path: Path, run_id: str, change: Any) -> None:
    """Commit ``change(record)`` in place of a run's record on results/local."""
    work = tmp_path / "edit"
    git(repo, "worktree", "add", "-q", str(work), "results/local")
    path = work / "runs" / EXP / f"{run_id}.json"
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2))
    git(work, "commit", "-q", "-am", "edit")
    git(repo, "worktree", "remove", str(work))


def runs_of(uri: str) -> list[Any]:
    """The runs of EXP in a store."""
    client = StoreReader(uri).client
    exp = client.get_experiment_by_name(EXP)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id]))


def as_format_1(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as the first format had it: latest metrics, artifact names."""
    rec.pop("history")
    return {**rec, "format": 1, "artifacts": [a["path"] for a in rec["artifacts"]]}


def test_format_1_still_imported(tmp_path: Path, repo: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    rewrite_record(repo, tmp_path, run_id, as_format_1)
    dest = uri_of(tmp_path, "dest")
    capsys.readouterr()
    assert bench("import", "--repo", str(repo), "--tracking-uri", dest) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 imported, 0 already present") and "1 record of format 1 (latest " \
        "metric values only (no history) and artifact names only (no files)" in out
    [new] = runs_of(dest)
    assert new.data.tags["import.source_format"] == "1"
    assert new.data.metrics == StoreReader(uri_of(tmp_path)).client.get_run(run_id).data.metrics
    assert [m.step for m in StoreReader(dest).client.get_metric_history(
        new.info.run_id, "total_s")] == [0]
    assert StoreReader(dest).artifact_paths(new.info.run_id) == []


def test_future_format_refused(tmp_path: Path, repo: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    rewrite_record(repo, tmp_path, run_id, lambda rec: {**rec, "format": 99})
    capsys.readouterr()
    assert bench("import", "--repo", str(repo), "--tracking-uri", uri_of(tmp_path, "dest")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "format 99" in line and "reads formats 1, 2" in line
    assert not (tmp_path / "dest").exists()


def test_size_caps(tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run(tmp_path)
    capsys.readouterr()
    assert publish(repo, tmp_path, "--max-artifact-size", "big") == 2
    assert "--max-artifact-size 'big' is not a size" in one_error_line(capsys.readouterr().err)
    assert git(repo, "for-each-ref") == ""
    assert publish(repo, tmp_path, "--max-artifact-size", "12") == 0
    assert "1 artifact over --max-artifact-size" in capsys.readouterr().out
    assert not any(f.startswith("artifacts/") for f in branch_files(repo))
    record = json.loads(git(repo, "show", f"results/local:runs/{EXP}/{run_id}.json"))
    assert record["artifacts"] == [{"path": "results/per_rank.csv", "size": 13, "stored": False,
                                    "sha256": hashlib.sha256(b"rank,t\n0,1.0\n").hexdigest()}]
    dest = uri_of(tmp_path, "dest")
    capsys.readouterr()
    assert bench("import", "--repo", str(repo), "--tracking-uri", dest) == 0
    assert "1 artifact over the size caps" in capsys.readouterr().out
    [new] = runs_of(dest)
    assert "results/per_rank.csv" in new.data.tags["import.artifacts_omitted"]
    assert StoreReader(dest).artifact_paths(new.info.run_id) == []
    # a larger cap republishes the run with its file; the total cap per run also counts
    assert publish(repo, tmp_path, "--max-artifact-size", "1KiB", "--max-run-artifacts",
                   "12") == 0
    assert "nothing new" in capsys.readouterr().out
    assert publish(repo, tmp_path, "--max-artifact-size", "1KiB") == 0
    assert f"artifacts/{EXP}/{run_id}/results/per_rank.csv" in branch_files(repo)


def test_bulk_history_matches_mlflow(tmp_path: Path) -> None:
    run_id = make_run(tmp_path)
    Tracker(uri_of(tmp_path)).log_metrics(run_id, {"odd": math.nan}, step=7)
    client = StoreReader(uri_of(tmp_path)).client
    got = metric_histories(uri_of(tmp_path), [run_id, "0" * 32])
    assert got["0" * 32] == {}
    slow = metric_histories(uri_of(tmp_path), [run_id], bulk=False)[run_id]
    assert [(k, [(s, repr(v), t) for s, v, t in p]) for k, p in slow.items()] == \
        [(k, [(s, repr(v), t) for s, v, t in p]) for k, p in got[run_id].items()]
    assert sorted(got[run_id]) == sorted(client.get_run(run_id).data.metrics)
    for bulk in (True, False):   # only the metrics asked for, the same points
        some = metric_histories(uri_of(tmp_path), [run_id], bulk=bulk, keys=["odd", "none"])
        assert list(some[run_id]) == ["odd"] and repr(some[run_id]["odd"]) == repr(
            got[run_id]["odd"])
    copied = download_run_artifacts(client, run_id, tmp_path / "copy")    # as from a server
    assert copied == tmp_path / "copy" and (copied / "results" / "per_rank.csv").read_text() \
        == "rank,t\n0,1.0\n"
    local = download_run_artifacts(client, run_id, tmp_path / "x",
                                   artifact_uris(uri_of(tmp_path), [run_id])[run_id])
    assert local.is_relative_to(tmp_path / "src") and not (tmp_path / "x").exists()
    for key, rows in got[run_id].items():
        want = sorted((m.step, repr(m.value), m.timestamp)
                      for m in client.get_metric_history(run_id, key))
        assert [(s, repr(v), t) for s, v, t in rows] == want


def test_altered_artifact_refused(tmp_path: Path, repo: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run(tmp_path)
    assert publish(repo, tmp_path) == 0
    work = tmp_path / "edit"
    git(repo, "worktree", "add", "-q", str(work), "results/local")
    (work / "artifacts" / EXP / run_id / "results" / "per_rank.csv").write_text("rank,t\n0,9\n")
    git(work, "commit", "-q", "-am", "tamper")
    git(repo, "worktree", "remove", str(work))
    capsys.readouterr()
    dest = uri_of(tmp_path, "dest")
    assert bench("import", "--repo", str(repo), "--tracking-uri", dest) == 2
    assert "does not match its sha256" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "dest").exists()
