"""OSU MPI micro-benchmarks written for mpi4py (``runners/benches/osu.py``): latency,
bandwidth, bidirectional bandwidth, broadcast and allreduce, per message size (a curve)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runners.config.checks import as_int
from runners.config.schema import BenchConfig
from runners.errors import ConfigError
from runners.kinds.base import BENCH_DIR, Kind
from runners.stages.trial import TrialCommand

TESTS = ("latency", "bw", "bibw", "bcast", "allreduce")
#: Point-to-point tests: they need two ranks at least.
PT2PT = ("latency", "bw", "bibw")
MAX_SIZE = 1 << 30


@dataclass
class OsuBench(BenchConfig):
    """OSU MPI micro-benchmarks written for mpi4py (``runners/benches/osu.py``)."""

    name: str = "osu"
    kind: str = "osu"
    env: str = "mpi4py_import"
    ranks: Any = 2
    trials: Any = 3
    tests: list[str] = field(default_factory=lambda: list(TESTS))
    min_size: Any = 1
    max_size: Any = 1048576
    iterations: Any = None
    warmup_iterations: Any = None


def as_size(value: Any, key: str) -> int:
    """A message size: a power of two (or 0) up to 1 GiB; else a one-line ConfigError."""
    size = as_int(value, key, 0)
    if size > MAX_SIZE:
        raise ConfigError(f"{key}={size} is out of range; give 0..{MAX_SIZE} bytes (1 GiB)")
    if size and size & (size - 1):
        raise ConfigError(f"{key}={size} is not a power of two; OSU sizes double from "
                          "min_size to max_size, e.g. 1, 2, 4, ... 1048576")
    return size


class Osu(Kind):
    """One ``osu.py <test>`` command per test; each message size is a step of a curve."""

    name = "osu"
    schema = OsuBench
    mpi = True

    def validate(self) -> None:
        """Known tests, message-size bounds, and the ranks point-to-point tests need."""
        bench = self.bench
        unknown = [t for t in bench.tests if t not in TESTS]
        if unknown or not bench.tests:
            raise ConfigError(f"bench.tests={list(bench.tests)} has unknown tests {unknown}; "
                              f"valid: {', '.join(TESTS)}")
        lo, hi = as_size(bench.min_size, "bench.min_size"), as_size(bench.max_size,
                                                                   "bench.max_size")
        if lo > hi:
            raise ConfigError(f"bench.min_size={lo} is larger than bench.max_size={hi}; "
                              "give min_size <= max_size")
        pt2pt = [t for t in bench.tests if t in PT2PT]
        ranks = int(bench.ranks)
        if pt2pt and ranks < 2:
            raise ConfigError(f"bench.ranks={ranks} is too few for point-to-point tests "
                              f"({', '.join(pt2pt)}); give bench.ranks >= 2")

    def xlabel(self) -> str:
        """Each step is a message size."""
        return "message size (bytes)"

    def commands(self, env_dir: str) -> list[TrialCommand]:
        """``<launch> python osu.py <test> --min-size … --max-size …`` per test."""
        bench = self.bench
        prefix = [*self.launch(int(bench.ranks), env_dir), f"{env_dir}/bin/python",
                  str(BENCH_DIR / "osu.py")]
        opts = ["--min-size", str(bench.min_size), "--max-size", str(bench.max_size)]
        if bench.iterations is not None:
            opts += ["--iterations", str(bench.iterations)]
        if bench.warmup_iterations is not None:
            opts += ["--warmup", str(bench.warmup_iterations)]
        return [TrialCommand((*prefix, str(test), *opts)) for test in bench.tests]


KIND = Osu
