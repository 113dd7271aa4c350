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
    from runners.kinds import trial_argvs
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
    kind = cfg.bench.kind
    if kind == "mpi4py_ci":
        print(f"build   {env_spec_path(cfg)}: venv --copies; pip install <binary>; pip download "
              "--no-binary :all: <source>; pip install --no-build-isolation <sdists> "
              "(MPICC=<env>/bin/mpicc)")
        print(f"sanity  print_rank.py on {cfg.bench.sanity_ranks} ranks, output must match "
              f"{cfg.bench.sanity_pattern!r}")
        print(f"deploy  copy the build to {cfg.bench.release_root}/<build id>")
    elif kind == "parsl_perf":
        print(f"prepare write {out_dir}/parsl_config_{cfg.machine.name}.py (fresh_config())")
    elif cfg.bench.env:
        print(f"env     build {env_spec_path(cfg)} into {cfg.machine.env_root}/<name>-<hash>"
              " (python -m venv --copies; pip install <packages>), reused when cached")
    if kind == "mpi4py_import":
        print(f"stage   rsync -a --delete --exclude '*.pyc' <env>/ {fs_root}/<name>-<hash>/"
              " (skipped when current); rewrite VIRTUAL_ENV in bin/activate")
        print(f"warmup  <env>/bin/python -c 'import {', '.join(cfg.bench.packages)}'"
              " (+ strace -f -c when available)")
    for argv in trial_argvs(cfg, "<env>"):
        print(f"bench   {shlex.join(argv)}")
    print(f"        x {cfg.bench.trials} trials (+ {cfg.bench.warmup} warm-up)")
    print("summary min/median/mean/max/std/cv over trials; curves per step; results CSV")
    print("# dry run: nothing submitted, nothing recorded")
