"""Users' own benchmarks from outside the repository: a kind installed with an entry point
(``examples/triad``, pip-installed into a folder of its own), the same kind named as
``package.module:Class`` from a user's config folder, and parsl-perf against a user's own
Parsl config module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DATA, ROOT, RunPy, Store

TRIAD = ROOT / "examples" / "triad"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/triad`` installed (no index, no build isolation) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                           "--no-build-isolation", "--no-deps", "--target", str(target),
                           str(TRIAD)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("triad_bench-*.dist-info/entry_points.txt"))
    return target


def with_path(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(path), *filter(None, [os.environ.get("PYTHONPATH")])]))


def test_an_installed_kind_runs_end_to_end(site: Path, run_py: RunPy, store: Store,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with_path(monkeypatch, site)
    proc = run_py("bench=triad", "bench.size=200000", "bench.trials=2", *store.overrides())
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("triad")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["triad_gbs.median"] > 0
    tags = run.data.tags
    assert (tags["fom"], tags["unit.triad_gbs"], tags["direction.triad_gbs"]) == (
        "triad_gbs", "GB/s", "higher")
    assert run.data.params["bench.size"] == "200000"
    assert "triad_gbs" in proc.stdout             # the summary table shows its merit first


def test_an_installed_kind_validates_its_input(site: Path, run_py: RunPy, store: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with_path(monkeypatch, site)
    proc = run_py("bench=triad", "bench.size=10", *store.overrides())
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bench.size=10" in lines[0] and "too small" in lines[0]
    assert not store.db.exists()


def test_a_kind_named_module_class_from_a_users_config_folder(
        run_py: RunPy, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with_path(monkeypatch, TRIAD)                  # importable, not installed
    proc = run_py("--config-dir", str(DATA / "user_conf"), "bench=triad_on_path",
                  *store.overrides())
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("triad_on_path")
    assert run.data.params["bench.kind"] == "triad_bench.kind:Triad"
    assert run.data.params["bench.repeat"] == "3"
    assert run.data.metrics["triad_gbs.median"] > 0


def test_a_kind_module_that_fails_to_import_is_one_line(run_py: RunPy, store: Store,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_kind.py").write_text("import not_a_module_anywhere\n")
    with_path(monkeypatch, tmp_path)
    proc = run_py("bench.kind=broken_kind:Kind", *store.overrides())
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cannot import broken_kind" in lines[0] and "not_a_module_anywhere" in lines[0]
    assert not store.db.exists()


def test_parsl_perf_against_a_users_config_module(run_py: RunPy, store: Store) -> None:
    config = DATA / "my_parsl_config.py"
    proc = run_py("bench=parsl_perf", "bench.time=1", f"bench.parsl_config={config}",
                  *store.overrides(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs("parsl_perf")
    params = run.data.params
    assert params["parsl.executor.mine.class"] == "HighThroughputExecutor"
    assert params["parsl.executor.mine.max_workers_per_node"] == "1"
    assert params["parsl.executor.mine.provider.class"] == "LocalProvider"
    assert run.data.metrics["tasks_per_s_final"] > 0
    assert run.data.tags["fom"] == "tasks_per_s_final"


def test_a_parsl_config_module_without_a_config_is_one_line(run_py: RunPy, store: Store,
                                                            tmp_path: Path) -> None:
    empty = tmp_path / "empty_config.py"
    empty.write_text("x = 1\n")
    proc = run_py("bench=parsl_perf", f"bench.parsl_config={empty}", *store.overrides())
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "exposes neither fresh_config() nor" in lines[0]
