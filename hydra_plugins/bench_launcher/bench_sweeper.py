"""Hydra's basic sweeper without its up-front composition of every job.

The basic sweeper composes each job once to validate the batch, and the launcher then
composes it again.  The Parsl launcher composes and validates every job itself before it
runs any (runners/sweep/), so ``hydra/sweeper=bench`` (the default here) skips the first
pass.  Everything else is the basic sweeper: the same override syntax and batching.
"""

# No ``from __future__ import annotations``: see parsl_launcher.py.
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

# Hydra publishes no import path for its basic sweeper (the plugin lives in
# hydra._internal); subclassing it keeps its override syntax, batching and multirun.yaml
# exactly as Hydra's own rather than a copy that could drift.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class BenchSweeperConf:
    """``hydra.sweeper.*``: as the basic sweeper's."""

    _target_: str = "hydra_plugins.bench_launcher.bench_sweeper.BenchSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045 - OmegaConf needs Optional
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(group="hydra/sweeper", name="bench", node=BenchSweeperConf,
                             provider="bench")


class BenchSweeper(BasicSweeper):
    """The basic sweeper; validation of the composed jobs is left to the launcher."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing here: the launcher composes and validates every job before any runs."""
        if type(self.launcher).__name__ != "ParslLauncher":
            super().validate_batch_is_legal(batch)
