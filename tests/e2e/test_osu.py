"""Tests of ``runners/benches/osu.py`` (OSU micro-benchmarks for mpi4py).

The benchmark runs under the ``mpiexec`` next to the interpreter running pytest
(the project's virtualenv ships MPICH's ``mpiexec`` in its ``bin``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners.benches import osu
from runners.stages.results import Result, parse_output
from tests.support import ROOT

OSU = ROOT / "runners" / "benches" / "osu.py"
BIN = Path(sys.executable).parent  # not resolved: a venv's python is a symlink
#: The mpich wheel's mpiexec, installed with the project (a dependency): never skipped.
MPIEXEC = BIN / "mpiexec"
TIMEOUT = 120

MAX_SIZE = 4096
EXPECTED = {  # test -> (unit, direction, smallest size)
    "latency": ("us", "lower", 1),
    "bw": ("MB/s", "higher", 1),
    "bibw": ("MB/s", "higher", 1),
    "bcast": ("us", "lower", 1),
    "allreduce": ("us", "lower", 4),
}


def run_osu(*args: str, ranks: int = 2) -> subprocess.CompletedProcess[str]:
    """Run ``mpiexec -n <ranks> python osu.py <args>`` and capture its output."""
    cmd = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(OSU), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=ROOT, env=os.environ.copy(), check=False)


def pow2_sizes(lo: int, hi: int) -> list[int]:
    """Powers of two from ``lo`` to ``hi`` inclusive."""
    return [1 << i for i in range(hi.bit_length()) if lo <= 1 << i <= hi]


@pytest.mark.parametrize("test", list(EXPECTED))
def test_sweep(test: str) -> None:
    proc = run_osu(test, "--max-size", str(MAX_SIZE))
    assert proc.returncode == 0, proc.stderr
    results = parse_output(proc.stdout)
    unit, direction, smallest = EXPECTED[test]
    sizes = pow2_sizes(smallest, MAX_SIZE)
    assert [r.step for r in results] == sizes
    for r in results:
        assert r.name == f"osu_{test}"
        assert r.unit == unit
        assert r.direction == direction
        assert math.isfinite(r.value) and r.value > 0, r
        assert r.tags["size"] == r.step
        assert r.tags["ranks"] == 2
        assert isinstance(r.tags["iterations"], int) and r.tags["iterations"] >= 1
        if test in ("bcast", "allreduce"):
            assert 0 < r.tags["min_us"] <= r.value <= r.tags["max_us"]
    if unit == "MB/s":
        # on shared memory, a 4 KiB message streams far faster than a 1 B one
        assert results[-1].value > results[0].value


def test_all_runs_every_test_in_order() -> None:
    proc = run_osu("all", "--max-size", "64", "--iterations", "20", "--warmup", "2")
    assert proc.returncode == 0, proc.stderr
    results = parse_output(proc.stdout)
    names: list[str] = []
    for r in results:
        if r.name not in names:
            names.append(r.name)
    assert names == [f"osu_{t}" for t in osu.TESTS]
    by_name: dict[str, list[Result]] = {}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    assert all(r.tags["iterations"] == 20 for r in results)
    assert [r.step for r in by_name["osu_latency"]] == pow2_sizes(1, 64)
    assert [r.step for r in by_name["osu_allreduce"]] == pow2_sizes(4, 64)


def test_one_rank_rejected_for_latency() -> None:
    proc = run_osu("latency", "--max-size", "8", ranks=1)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "2 MPI ranks" in lines[0]
    assert parse_output(proc.stdout, require=False) == []


def test_min_above_max_rejected() -> None:
    proc = run_osu("latency", "--min-size", "1024", "--max-size", "8")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # printed by rank 0 only
    assert "--min-size" in lines[0] and "--max-size" in lines[0]
    assert parse_output(proc.stdout, require=False) == []


@pytest.mark.parametrize("argv", [
    ["bw", "--max-size", "-8"],
    ["bw", "--min-size", "-1"],
    ["bw", "--max-size", "3000"],
    ["bw", "--min-size", "3", "--max-size", "64"],
    ["bw", "--max-size", str(2 << 30)],
    ["bw", "--iterations", "0"],
    ["bw", "--warmup-large", "-1"],
    ["allreduce", "--max-size", "2"],
    ["nope"],
    ["bw", "--max-size", "big"],
])
def test_invalid_options(argv: list[str]) -> None:
    with pytest.raises(osu.UsageError) as info:
        osu.resolve(osu.parse_args(argv))
    assert "\n" not in str(info.value)


def test_defaults_and_overrides() -> None:
    (lat,) = osu.resolve(osu.parse_args(["latency"]))
    assert (lat.min_size, lat.max_size) == (1, 1 << 22)
    assert lat.counts(8192) == (lat.iterations, lat.warmup)
    assert lat.counts(16384) == (lat.iterations_large, lat.warmup_large)
    assert lat.iterations_large < lat.iterations
    settings = osu.resolve(osu.parse_args(["all", "--max-size", "1024", "--iterations", "7"]))
    assert [s.test for s in settings] == list(osu.TESTS)
    assert all(s.max_size == 1024 and s.iterations == 7 for s in settings)
    (small,) = osu.resolve(osu.parse_args(["bw", "--max-size", "0"]))
    assert (small.min_size, small.max_size) == (0, 0)


def test_message_sizes() -> None:
    assert osu.message_sizes(1, 16) == [1, 2, 4, 8, 16]
    assert osu.message_sizes(0, 4) == [0, 1, 2, 4]
    assert osu.message_sizes(1, 16, multiple_of=4) == [4, 8, 16]
    assert osu.message_sizes(0, 0) == [0]


def test_import_has_no_side_effects() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('osu', {str(OSU)!r})\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "sys.modules['osu'] = mod  # dataclasses look their module up\n"
            "spec.loader.exec_module(mod)\n"
            "assert 'mpi4py.MPI' not in sys.modules, 'MPI initialised on import'\n"
            "assert callable(mod.main)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_standalone_imports_only_stdlib_mpi4py_numpy() -> None:
    source = OSU.read_text()
    assert "from runners" not in source and "import runners" not in source
