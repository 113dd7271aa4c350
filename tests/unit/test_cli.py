"""The ``bench`` console script: help on every verb, runs table, ui command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runners.cli.main import build_parser, main

BENCH = str(Path(sys.executable).with_name("bench"))


def _verbs() -> list[list[str]]:
    """Every verb the parser knows, plus the bare command."""
    import argparse

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return [[], *[[v] for v in sub.choices]]


@pytest.mark.parametrize("verb", _verbs(), ids=lambda v: " ".join(v) or "bench")
def test_every_verb_has_help(verb: list[str]) -> None:
    proc = subprocess.run([BENCH, *verb, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: bench" in proc.stdout


def test_verbs_are_listed() -> None:
    """Every verb is a sub-command and is named, as a word, in ``bench --help``."""
    import re

    expected = {"runs", "ui", "compare", "scaling", "regress", "baseline", "report",
                "analytics", "publish", "import", "nightly", "bisect", "schedule", "site",
                "sync"}
    assert {v for (v,) in _verbs()[1:]} == expected
    words = set(re.findall(r"[a-z]+", build_parser().format_help()))
    assert expected <= words


def test_missing_store_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/none.db"
    assert main(["runs", "--tracking-uri", uri]) == 2
    assert main(["ui", "--tracking-uri", uri, "--print-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("no store at" in line for line in err)


def test_runs_lists_a_recorded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runners.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = Tracker(uri, str(tmp_path / "art"))
    run_id = tracker.start_run("mpi4py_import", "r", {"bench.ranks": "4"},
                               {"machine": "local", "fs": "tmpfs"})
    tracker.log_metrics(run_id, {"total_s.median": 0.25})
    tracker.end_run(run_id)
    assert main(["runs", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert run_id[:12] in out and "FINISHED" in out and "0.25" in out and "tmpfs" in out
    assert main(["runs", "--tracking-uri", uri, "--experiment", "other"]) == 2
    assert "mpi4py_import" in capsys.readouterr().err
    assert main(["ui", "--tracking-uri", uri, "--print-only"]) == 0
    assert f"--backend-store-uri {uri}" in capsys.readouterr().out
