"""Local end-to-end tier for the benchmark suite: OSU, parsl-perf, command, mpi4py_ci."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import RunPy, Store

pytestmark = pytest.mark.e2e


def _steps(store: Store, run_id: str, metric: str) -> list[int]:
    return sorted(m.step for m in store.client().get_metric_history(run_id, metric))


def test_osu_logs_one_curve_per_test(run_py: RunPy, store: Store) -> None:
    run_py("bench=osu", "bench.max_size=1024", "bench.trials=2", *store.overrides(), check=True)
    run = store.runs("osu")[0]
    assert run.info.status == "FINISHED"
    sizes = [2**i for i in range(11)]
    for test in ("latency", "bw", "bibw", "bcast"):
        assert _steps(store, run.info.run_id, f"osu_{test}") == sizes, test
        assert _steps(store, run.info.run_id, f"osu_{test}.cv") == sizes
    assert _steps(store, run.info.run_id, "osu_allreduce")[0] == 4    # float32 elements
    tags = run.data.tags
    assert tags["direction.osu_latency"] == "lower" and tags["direction.osu_bw"] == "higher"
    m = run.data.metrics
    assert m["total_s.n"] == 2 and m["peak_rss_mb.max"] > 0 and "cpu_user_s.median" in m
    assert m["host.load1.before"] >= 0 and m["host.mem_total_gb.after"] > 0
    arts = store.artifact_paths(run.info.run_id)
    for name in ("results/results.csv", "plots/osu_latency.png", "plots/osu_bw.png",
                 "plots/summary.pdf", "logs/bench/trial-0.0.stdout.log"):
        assert name in arts, (name, arts)


def test_command_reads_json_results(run_py: RunPy, store: Store) -> None:
    run_py("bench=command", "bench.params.n=2000", "bench.trials=2", *store.overrides(),
           check=True)
    run = store.runs("command")[0]
    assert run.info.status == "FINISHED"
    assert _steps(store, run.info.run_id, "sort_us") == [1000, 2000]
    assert run.data.metrics["sort_reversed_us.median"] > 0
    assert run.data.tags["direction.sort_us"] == "lower"


@pytest.mark.parametrize(("printed", "expected"), [
    ('{"name": "ok", "value": 1}\n{broken', "not valid JSON"),
    ("no results here", "no JSON result lines"),
    ('{"name": "x"}', "'value' must be a finite number"),
])
def test_command_with_bad_output_fails_as_parse(run_py: RunPy, store: Store, tmp_path: Path,
                                                printed: str, expected: str) -> None:
    script = tmp_path / "bad.py"
    script.write_text(f"print({printed!r})\n")
    proc = run_py("bench=command", f"bench.command='{{python}} {script}'", "bench.trials=1",
                  *store.overrides())
    assert proc.returncode == 1, proc.stderr
    run = store.runs("command")[0]
    assert run.info.status == "FAILED"
    assert (run.data.tags["failure.stage"], run.data.tags["failure.kind"]) == ("bench", "parse")
    assert expected in run.data.tags["failure.message"]
    assert "logs/bench/trial-0.stdout.log" in store.artifact_paths(run.info.run_id)


def test_parsl_perf_logs_every_iteration(run_py: RunPy, store: Store) -> None:
    run_py("bench=parsl_perf", "bench.time=1", *store.overrides(), check=True, timeout=300)
    run = store.runs("parsl_perf")[0]
    assert run.info.status == "FINISHED"
    steps = _steps(store, run.info.run_id, "tasks_per_s")
    assert steps[0] == 1 and len(steps) >= 2
    assert run.data.metrics["tasks_per_s_final"] > 10
    arts = store.artifact_paths(run.info.run_id)
    assert "config/parsl_config_local.py" in arts and "logs/bench/trial-0.stdout.log" in arts


@pytest.mark.parametrize(("args", "expected"), [
    (["bench=osu", "bench.ranks=1"], "too few for point-to-point tests"),
    (["bench=osu", "bench.min_size=1024", "bench.max_size=8"], "is larger than bench.max_size"),
    (["bench=osu", "bench.max_size=3000"], "is not a power of two"),
    (["bench=osu", "bench.max_size=4294967296"], "is out of range"),
    (["bench=osu", "bench.tests=[latency,nope]"], "unknown tests ['nope']"),
    (["bench=command", "bench.command='{python} x.py {size}'"], "uses {size}"),
    (["bench=parsl_perf", "bench.time=0"], "bench.time=0.0 must be > 0"),
    (["bench=mpi4py_ci", "bench.sanity_ranks=1"], "bench.sanity_ranks=1 is too small"),
])
def test_bad_benchmark_input(run_py: RunPy, store: Store, args: list[str],
                             expected: str) -> None:
    proc = run_py(*args, *store.overrides(), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not store.db.exists() or store.runs(args[0].split("=")[1]) == []


def test_mpi4py_ci_pipeline_end_to_end(run_py: RunPy, store: Store, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    run_py("bench=mpi4py_ci", "bench.max_size=256", "bench.tests=[latency,bw]",
           f"bench.release_root={releases}", *store.overrides(), check=True, timeout=1800)
    run = store.runs("mpi4py_ci")[0]
    assert run.info.status == "FINISHED"
    m, tags = run.data.metrics, run.data.tags
    for stage in ("build", "sanity", "deploy", "bench", "summary"):
        assert f"stage.{stage}_s" in m, stage
    build_id = tags["build.id"]
    assert (releases / build_id / "bin" / "python").exists()
    assert (releases / "latest").resolve() == (releases / build_id).resolve()
    assert "cython" in tags["build.sdists"].lower() and "mpi4py" in tags["build.sdists"]
    assert _steps(store, run.info.run_id, "osu_latency") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    arts = store.artifact_paths(run.info.run_id)
    assert "plots/summary.pdf" in arts and "logs/sanity/sanity.stdout.log" in arts
    assert any(a.startswith("logs/build/build.mpi4py") for a in arts)


def test_failed_sanity_never_deploys(run_py: RunPy, store: Store, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    proc = run_py("bench=mpi4py_ci", "bench.sanity_pattern=Hello from rank 7 of 2",
                  f"bench.release_root={releases}", *store.overrides(), timeout=1800)
    assert proc.returncode == 2, proc.stderr
    run = store.runs("mpi4py_ci")[0]
    assert run.info.status == "FAILED"
    assert (run.data.tags["failure.stage"], run.data.tags["failure.kind"]) == ("sanity",
                                                                               "sanity")
    assert not releases.exists() or not any(releases.iterdir())


def test_failed_build_ends_failed_with_its_log(run_py: RunPy, store: Store,
                                              tmp_path: Path) -> None:
    envs = tmp_path / "proj" / "envs"
    envs.mkdir(parents=True)
    (envs / "broken.yaml").write_text(
        "name: broken\npackages: [x]\nbinary: [mpich]\nsource: [mpi4py==0.0.1]\n")
    proc = run_py("bench=mpi4py_ci", "bench.env=broken", f"project_root={tmp_path / 'proj'}",
                  f"cache_root={tmp_path / 'cache'}", *store.overrides(), timeout=900)
    assert proc.returncode == 1, proc.stderr
    run = store.runs("mpi4py_ci")[0]
    assert run.info.status == "FAILED" and run.data.tags["failure.stage"] == "build"
    assert any(a.startswith("logs/build/") for a in store.artifact_paths(run.info.run_id))
