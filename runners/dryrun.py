"""``dry_run=true``: print what would run, submit nothing, record nothing."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def print_plan(cfg: Any, out_dir: Path) -> None:
    """Print the composed config and each stage's command line.

    Parameters
    ----------
    cfg : DictConfig
        The validated experiment config.
    out_dir : Path
        The Hydra output directory (where logs would go).
    """
    from runners.kinds import trial_argv
    from runners.validate import env_spec_path

    fs_root = cfg.machine.filesystems[cfg.fs.name].path
    print("# composed config")
    print(OmegaConf.to_yaml(cfg, resolve=True))
    from parsl_configs.render import render

    print(f"# Parsl: scheduler={cfg.machine.scheduler} executor=HighThroughputExecutor "
          f"run_dir={out_dir / 'runinfo'}")
    sub = render(cfg.machine, cfg.fs.name)
    print("# what would be submitted (one block)")
    print(sub.text.rstrip())
    for cmd in sub.commands:
        print(f"# scheduler command: {cmd}")
    print("# stages")
    print(f"env     build {env_spec_path(cfg)} into {cfg.machine.env_root}/<name>-<hash>"
          " (python -m venv --copies; pip install <packages>), reused when cached")
    print(f"stage   rsync -a --delete --exclude '*.pyc' <env>/ {fs_root}/<name>-<hash>/"
          " (skipped when current); rewrite VIRTUAL_ENV in bin/activate")
    print(f"warmup  <env>/bin/python -c 'import {', '.join(cfg.bench.packages)}'"
          " (+ strace -f -c when available)")
    argv = trial_argv(cfg, "<env>")
    print(f"bench   {shlex.join(argv)}   x {cfg.bench.trials} trials"
          f" (+ {cfg.bench.warmup} warm-up)")
    print("summary min/median/mean/max/std/cv over trials; per-rank CSV")
    print("# dry run: nothing submitted, nothing recorded")
