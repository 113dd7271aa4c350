"""The only place that builds Parsl configs from a machine config.

``build(machine, run_dir)`` returns a :class:`parsl.config.Config` with one
HighThroughputExecutor labelled with the machine's name.  Each scheduler has a module
here; each module also exposes ``fresh_config()`` (Parsl's convention for site configs),
so ``parsl-perf --config parsl_configs/local.py`` works too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parsl.config import Config


def python_bin_dir() -> str:
    """The directory of the running interpreter (Parsl finds its worker scripts on PATH)."""
    return str(Path(sys.executable).parent)


def ensure_python_on_path() -> None:
    """Put this interpreter's ``bin/`` first on PATH, so HTEX finds ``interchange.py``."""
    bindir = python_bin_dir()
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def build(machine: Any, run_dir: str) -> Config:
    """Build the Parsl config for a machine.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        The machine section of the experiment config.
    run_dir : str
        Parsl's run directory (under the Hydra output directory).

    Returns
    -------
    parsl.config.Config
    """
    from parsl_configs import local

    builders = {"local": local.config_for}
    try:
        builder = builders[machine.scheduler]
    except KeyError:
        raise ValueError(f"no Parsl config for scheduler {machine.scheduler!r}; "
                         f"valid: {', '.join(builders)}") from None
    return builder(machine, run_dir)
