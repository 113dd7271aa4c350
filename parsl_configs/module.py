"""Write a machine's Parsl config as a standalone config module (``fresh_config()``),
the form ``parsl-perf --config FILE`` and other Parsl tools load."""

from __future__ import annotations

from pathlib import Path

from runners.config.schema import MachineConfig

TEMPLATE = '''"""Parsl config for machine={name}, written by parsl_configs/module.py.

    parsl-perf --config {path}
"""

from omegaconf import OmegaConf

import parsl_configs

MACHINE = OmegaConf.create({machine})


def fresh_config():
    """A fresh Parsl Config for this machine (Parsl's site-config convention)."""
    return parsl_configs.build(MACHINE, {run_dir!r}, {fs!r})
'''


def write_config_module(machine: MachineConfig, fs_name: str | None, out_dir: Path) -> Path:
    """Write ``<out_dir>/parsl_config_<machine>.py`` and return its path.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        The resolved machine section.
    fs_name : str, optional
        The chosen filesystem (its batch directives).
    out_dir : Path
        Where to write (the Hydra output directory); Parsl's run directory goes below it.
    """
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.create(OmegaConf.to_container(machine, resolve=True)))
    path = Path(out_dir) / f"parsl_config_{machine.name}.py"
    path.write_text(TEMPLATE.format(name=machine.name, path=path, machine=repr(data),
                                    run_dir=str(Path(out_dir) / "runinfo-parsl-perf"),
                                    fs=fs_name))
    return path
