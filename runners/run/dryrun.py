"""``dry_run=true``: print what would run, submit nothing, record nothing."""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from runners.kinds.base import Kind


def print_plan(cfg: DictConfig, kind: Kind, out_dir: Path) -> None:
    """Print the composed config, the submission of one block and each stage's command line.

    Parameters
    ----------
    cfg : DictConfig
        The validated experiment config.
    kind : Kind
        Its benchmark kind (which says its stages).
    out_dir : Path
        The Hydra output directory (where logs would go).
    """
    from parsl_configs.render import render

    print("# composed config")
    print(OmegaConf.to_yaml(cfg, resolve=True))
    print(f"# Parsl: scheduler={cfg.machine.scheduler} executor=HighThroughputExecutor "
          f"run_dir={out_dir / 'runinfo'}")
    sub = render(cfg.machine, cfg.fs.name)
    print("# what would be submitted (one block)")
    print(sub.text.rstrip())
    for cmd in sub.commands:
        print(f"# scheduler command: {cmd}")
    print("# stages")
    for line in kind.plan(out_dir):
        print(line)
    for command in kind.commands("<env>"):
        print(f"bench   {shlex.join(command.argv)}")
    print(f"        x {cfg.bench.trials} trials (+ {cfg.bench.warmup} warm-up)")
    print("summary min/median/mean/max/std/cv over trials; curves per step; results CSV")
    print("# dry run: nothing submitted, nothing recorded")
