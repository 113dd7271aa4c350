"""A results branch loses nothing: real runs (an OSU run with its per-size curves, a sleep run,
a FAILED run) and a series with a step, published to a local git repository and imported
into a fresh store, come back field by field, and the verbs that judge them answer alike."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runners.analysis.annotations import note
from runners.cli.main import main
from runners.tracking.tracker import Tracker
from tests.support import ROOT, Store, child_env

pytestmark = pytest.mark.e2e

#: Artifacts over this many bytes (OSU's plots) are published by path, size and sha256.
CAP = 20 * 1024
IMPORT_TAGS = {"import.source_run_id", "import.source_commit", "import.source_branch",
               "import.source_format", "import.artifacts_omitted"}


@dataclass
class Trip:
    """The two stores of a round trip and the imported run of each original one."""

    src: Store
    dst: Store
    repo: Path
    copy_of: dict[str, str]      # original run id -> imported run id


def store_at(root: Path) -> Store:
    return Store(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", root / "mlflow.db")


def series(store: Store) -> None:
    """Ten runs of one series whose total_s.median steps up by half after the sixth (a NaN
    point in one of them)."""
    tracker = Tracker(store.uri, str(store.artifacts))
    for i, value in enumerate([1.00, 1.02, 0.98, 1.01, 0.99, 1.00, 1.5, 1.52, 1.49, 1.51]):
        run_id = tracker.start_run("series", f"r{i}", {"config.hash": "abc"},
                                   {"machine": "local", "fs": "nfs", "config.hash": "abc",
                                    "git.commit": f"{i:040x}"})
        tracker.log_metrics(run_id, {"total_s.median": value, "odd": math.nan if i == 3 else i})
        if i == 2:   # an annotation (bench baseline accept) travels as a tag
            tracker.set_tags(run_id, {"baseline.accepted.odd": note("counter reset")})
        tracker.end_run(run_id)


@pytest.fixture(scope="module")
def trip(tmp_path_factory: pytest.TempPathFactory) -> Trip:
    root = tmp_path_factory.mktemp("roundtrip")
    src, dst = store_at(root / "src"), store_at(root / "dst")

    def run(name: str, *args: str) -> int:
        argv = [sys.executable, str(ROOT / "run.py"), *args, *src.overrides(),
                f"hydra.run.dir={root / 'outputs' / name}"]
        return subprocess.run(argv, env=child_env(), cwd=root, capture_output=True,
                              timeout=600, check=False).returncode

    assert run("osu", "bench=osu", "bench.max_size=64", "bench.trials=1") == 0
    assert run("sleep", "bench=sleep", "bench.params.seconds=0", "bench.trials=2") == 0
    assert run("failed", "bench=sleep", "bench.params.seconds=0", "bench.params.exit=3",
               "bench.trials=1") == 1
    series(src)
    repo = root / "results"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert main(["publish", "--repo", str(repo), "--tracking-uri", src.uri,
                 "--max-artifact-size", f"{CAP}"]) == 0
    assert main(["import", "--repo", str(repo), "--tracking-uri", dst.uri]) == 0
    client = dst.client()
    copy_of = {r.data.tags["import.source_run_id"]: r.info.run_id
               for r in client.search_runs([e.experiment_id for e in
                                            client.search_experiments()])}
    return Trip(src, dst, repo, copy_of)


def original_runs(store: Store) -> list[Any]:
    client = store.client()
    return list(client.search_runs([e.experiment_id for e in client.search_experiments()]))


def points(store: Store, run_id: str, key: str) -> list[tuple[int, str, int]]:
    """Every point of a metric, as (step, repr(value), timestamp) so NaN equals NaN."""
    return sorted((m.step, repr(m.value), m.timestamp)
                  for m in store.client().get_metric_history(run_id, key))


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_field_comes_back(trip: Trip, tmp_path: Path) -> None:
    runs = original_runs(trip.src)
    assert len(runs) == 13 and sorted(trip.copy_of) == sorted(r.info.run_id for r in runs)
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"}
    src, dst = trip.src.client(), trip.dst.client()
    for old in runs:
        name = src.get_experiment(old.info.experiment_id).name
        new = dst.get_run(trip.copy_of[old.info.run_id])
        assert new.data.params == old.data.params
        mine = {k: v for k, v in new.data.tags.items() if k.startswith("import.")}
        assert {k: v for k, v in new.data.tags.items() if k not in mine} == old.data.tags
        assert set(mine) <= IMPORT_TAGS and mine["import.source_format"] == "2"
        assert mine["import.source_run_id"] == old.info.run_id
        assert (new.info.status, new.info.start_time, new.info.end_time) == \
            (old.info.status, old.info.start_time, old.info.end_time)
        assert set(new.data.metrics) == set(old.data.metrics)
        for key in old.data.metrics:
            assert points(trip.dst, new.info.run_id, key) == points(trip.src, old.info.run_id,
                                                                    key), key
        before, after = ({}, {}) if not src.list_artifacts(old.info.run_id) else (
            files(Path(c.download_artifacts(i, "", str(tmp_path / i))))
            for c, i in ((src, old.info.run_id), (dst, new.info.run_id)))
        assert after == {p: b for p, b in before.items() if len(b) <= CAP}
        big = sorted(p for p, b in before.items() if len(b) > CAP)
        show = ["git", "-C", str(trip.repo), "show",
                f"results/local:runs/{name}/{old.info.run_id}.json"]
        record = json.loads(subprocess.run(show, capture_output=True, check=True).stdout)
        listed = {a["path"]: a for a in record["artifacts"]}
        assert sorted(listed) == sorted(before)
        for path in big:
            assert listed[path] == {"path": path, "size": len(before[path]), "stored": False,
                                    "sha256": hashlib.sha256(before[path]).hexdigest()}
            assert path in mine["import.artifacts_omitted"]
        assert ("import.artifacts_omitted" in mine) == bool(big)
        for key in (("osu_latency", "osu_bw") if name == "osu" else ()):
            assert [s for s, _v, _t in points(trip.dst, new.info.run_id, key)] == \
                [2**i for i in range(7)]      # the per-size curve, step = message size


def renamed(text: str, trip: Trip) -> str:
    """An output of the imported store with its run ids put back to the original ones."""
    for old, new in trip.copy_of.items():
        for n in (32, 12, 8):
            text = text.replace(new[:n], old[:n])
    return text


def verb(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_importing_again_adds_nothing(trip: Trip, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verb(capsys, "import", "--repo", str(trip.repo), "--tracking-uri", trip.dst.uri)
    assert code == 0 and out.startswith("0 imported, 13 already present")
    assert len(original_runs(trip.dst)) == 13


def test_verbs_answer_alike(trip: Trip, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    answers: list[list[tuple[int, str]]] = []
    for store in (trip.src, trip.dst):
        out = [verb(capsys, "regress", "--dry-run", "--tracking-uri", store.uri),
               verb(capsys, "regress", "--dry-run", "--format", "csv", "--tracking-uri",
                    store.uri),
               verb(capsys, "compare", "--tracking-uri", store.uri),
               verb(capsys, "compare", "--experiment", "osu", "--metric", "osu_latency",
                    "--tracking-uri", store.uri)]
        report = tmp_path / f"report-{len(answers)}"
        code, line = verb(capsys, "report", "--output", str(report), "--no-pdf",
                          "--tracking-uri", store.uri)
        out.append((code, line.split(" in ")[0].replace(str(report), "REPORT")))
        tables = []
        for name in ("runs.csv", "verdicts.csv"):
            frame = pd.read_csv(io.StringIO((report / "data" / name).read_text()))
            tables.append(frame.drop(columns=[c for c in frame if "import." in c]).to_csv())
        answers.append([(c, text if store is trip.src else renamed(text, trip))
                        for c, text in [*out, *((0, t) for t in tables)]])
    assert answers[0][0][0] == 1 and "series" in answers[0][0][1]     # the step is found
    assert answers[1] == answers[0]


def test_annotations_travel(trip: Trip, capsys: pytest.CaptureFixture[str]) -> None:
    """A step accepted in the original store is accepted in the imported one."""
    shown = [verb(capsys, "baseline", "show", "--metric", "odd", "--format", "csv",
                  "--tracking-uri", store.uri) for store in (trip.src, trip.dst)]
    for code, out in shown:
        assert code == 0 and "accepted by" in out and "counter reset" in out
    lines = [[line.split(",")[0] for line in out.splitlines()] for _, out in shown]
    assert lines[0] == lines[1]
