"""The Hydra Launcher that runs a sweep's jobs concurrently through one Parsl DataFlowKernel.

Selected with ``hydra/launcher=parsl`` (the default for ``python run.py -m``);
``hydra/launcher=basic`` gives Hydra's one-after-another launcher.  Hydra loads launcher
classes only from the ``hydra_plugins`` package, so the class lives here and stays thin;
the work is in :mod:`runners.sweep.launch`.
"""

# No ``from __future__ import annotations``: Hydra's plugin scanner runs this module before
# it is in sys.modules, where dataclasses cannot resolve string annotations.
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig


@dataclass
class ParslLauncherConf:
    """``hydra.launcher.*``: how many jobs run at once on each machine."""

    _target_: str = "hydra_plugins.bench_launcher.parsl_launcher.ParslLauncher"
    concurrency: int = 0     # jobs at once per machine; 0 = the machine's max_workers


ConfigStore.instance().store(group="hydra/launcher", name="parsl", node=ParslLauncherConf,
                             provider="bench")


class ParslLauncher(Launcher):
    """Runs every job of a sweep concurrently on its machine's Parsl executor.

    Parameters
    ----------
    concurrency : int
        Jobs running at once per machine (0: the machine's ``max_workers``).
    """

    def __init__(self, concurrency: int = 0) -> None:
        super().__init__()
        self.concurrency = int(concurrency)
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.task_function: Optional[TaskFunction] = None  # noqa: UP045
        self.hydra_context: Optional[HydraContext] = None  # noqa: UP045

    def setup(self, *, hydra_context: "HydraContext", task_function: "TaskFunction",
              config: "DictConfig") -> None:
        """Keep what :meth:`launch` needs (Hydra's Launcher contract)."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence["JobReturn"]:
        """Run the jobs; return one JobReturn per job, in order.

        Bad input (an invalid point, an empty sweep) exits 2 with one line, before any job.
        """
        from runners.errors import ConfigError, UsageExit
        from runners.sweep.launch import run_sweep

        try:
            return run_sweep(self, job_overrides, initial_job_idx)
        except ConfigError as exc:
            raise UsageExit(str(exc)) from None

    def __repr__(self) -> str:
        return f"ParslLauncher(concurrency={self.concurrency})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.concurrency,))
