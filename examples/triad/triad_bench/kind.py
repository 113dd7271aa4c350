"""The ``triad`` kind: its schema, its check, one trial's command, its figure of merit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from runners.config.schema import BenchConfig
from runners.errors import ConfigError
from runners.kinds.base import Kind, Merit
from runners.stages.trial import TrialCommand


@dataclass
class TriadBench(BenchConfig):
    """``bench.*`` of the triad: the array length and how often the kernel is repeated."""

    name: str = "triad"
    kind: str = "triad"
    env: str = ""             # no environment of its own: the runner's Python and numpy
    trials: Any = 3
    size: int = 2_000_000
    repeat: int = 10


class Triad(Kind):
    """``a = b + s * c`` over ``size`` doubles, best of ``repeat``; reports GB/s."""

    name = "triad"
    schema = TriadBench

    def validate(self) -> None:
        if int(self.bench.size) < 1000 or int(self.bench.repeat) < 1:
            raise ConfigError(f"bench.size={self.bench.size} / bench.repeat="
                              f"{self.bench.repeat} is too small; give size >= 1000 and "
                              "repeat >= 1")

    def commands(self, env_dir: str) -> list[TrialCommand]:
        argv = (sys.executable, "-m", "triad_bench.program", "--size", str(self.bench.size),
                "--repeat", str(self.bench.repeat))
        return [TrialCommand(argv)]      # JSON result lines: the default output contract

    def merits(self, results: Any) -> list[Merit]:
        return [Merit("triad_gbs", "GB/s", "higher")]


KIND = Triad
