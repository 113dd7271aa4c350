"""Benchmarks that print text tables, read with declared patterns and no Python: mpi4py's
own OSU demos from its sdist (``bench=osu_demo``, one YAML), and what a pattern that never
matches or a failed sanity line ends in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import DATA, RunPy, Store

pytestmark = pytest.mark.e2e
USER_CONF = str(DATA / "user_conf")
SIZES = [0] + [2**i for i in range(23)]            # 0 B .. 4 MiB, as the demos print them


def steps(store: Store, run_id: str, metric: str) -> list[int]:
    return sorted(m.step for m in store.client().get_metric_history(run_id, metric))


def test_mpi4py_osu_demos_give_per_size_curves(run_py: RunPy, store: Store) -> None:
    proc = run_py("bench=osu_demo", *store.overrides(), timeout=900)
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("osu_demo")
    assert run.info.status == "FINISHED"
    assert steps(store, run.info.run_id, "osu_latency") == SIZES      # named as bench=osu's
    assert steps(store, run.info.run_id, "osu_bw") == SIZES[1:]
    tags = run.data.tags
    assert tags["fom"] == "osu_latency,osu_bw"
    assert (tags["unit.osu_latency"], tags["direction.osu_latency"]) == ("us", "lower")
    assert (tags["unit.osu_bw"], tags["direction.osu_bw"]) == ("MB/s", "higher")
    arts = store.artifact_paths(run.info.run_id)
    for path in ("plots/osu_latency.png", "plots/osu_bw.png", "plots/summary.pdf",
                 "logs/bench/trial-0.latency.stdout.log", "logs/bench/trial-0.bw.stdout.log",
                 "results/results.csv"):
        assert path in arts, (path, arts)


def test_a_text_table_by_pattern(run_py: RunPy, store: Store) -> None:
    proc = run_py("--config-dir", USER_CONF, "bench=text_table", *store.overrides())
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("text_table")
    history = store.client().get_metric_history(run.info.run_id, "time")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.5), (2, 3.5), (4, 7.25)]
    assert run.data.tags["fom"] == "time" and run.data.tags["unit.time"] == "us"


def test_a_pattern_that_never_matches_fails_parse_with_the_output_kept(
        run_py: RunPy, store: Store) -> None:
    proc = run_py("--config-dir", USER_CONF, "bench=text_table_nomatch", *store.overrides())
    assert proc.returncode == 1, proc.stderr
    (run,) = store.runs("text_table_nomatch")
    assert run.info.status == "FAILED"
    assert run.data.tags["failure.kind"] == "parse"
    assert "the pattern of metric 'time' never matched" in run.data.tags["failure.message"]
    local = store.client().download_artifacts(run.info.run_id, "logs/bench/trial-0.stdout.log")
    assert "# My Table" in Path(local).read_text()


def test_a_forbidden_sanity_line_fails_the_run(run_py: RunPy, store: Store) -> None:
    proc = run_py("--config-dir", USER_CONF, "bench=text_table_insane", *store.overrides())
    assert proc.returncode == 2, proc.stderr          # a sanity failure, as mpi4py_ci's
    (run,) = store.runs("text_table_insane")
    assert run.info.status == "FAILED" and run.data.tags["failure.kind"] == "sanity"
    assert "forbidden pattern '^done$' found" in run.data.tags["failure.message"]
