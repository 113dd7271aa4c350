"""Register the schemas and the project's Hydra plugins before Hydra composes a config."""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from runners.config.schema import PROJECT_ROOT, Config
from runners.kinds.registry import registry

CONF_DIR = PROJECT_ROOT / "conf"


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent).

    ``config_schema`` is the primary config; every registered kind's schema is
    ``bench/<kind>_schema`` (what its YAML extends) and, for a kind with no YAML in
    ``conf/bench/``, ``bench/<kind>`` too.  A kind that failed to load is named on stderr.
    """
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("python_prefix"):   # the runner's environment (a venv)
        OmegaConf.register_new_resolver("python_prefix", lambda: sys.prefix)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    kinds, broken = registry()
    for name, kind in kinds.items():
        cs.store(group="bench", name=f"{name}_schema", node=kind.schema)
        if not (CONF_DIR / "bench" / f"{name}.yaml").is_file():
            cs.store(group="bench", name=name, node=kind.schema)
    for name, why in broken.items():
        print(f"warning: benchmark kind {name!r} is not available: {why}", file=sys.stderr)
    import hydra_plugins.bench_launcher.bench_sweeper  # noqa: F401 - hydra/sweeper=bench
    import hydra_plugins.bench_launcher.parsl_launcher  # noqa: F401 - hydra/launcher=parsl
