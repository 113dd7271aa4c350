"""Compose the jobs of a sweep fast: Hydra composes once per distinct set of config-group
choices, and each further job is a copy of that template with its value overrides applied.

Hydra's ``load_sweep_config`` re-reads and re-merges every YAML file for every job
(~75 ms here); a copy plus a few ``OmegaConf`` updates takes a few milliseconds.  The
result is the same config (tests/unit/test_sweep_parts.py compares the two), including
``hydra.overrides.task`` and ``hydra.job.override_dirname``.
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class Composer:
    """Composes the job configs of one sweep.

    Parameters
    ----------
    config_loader : hydra ConfigLoader
        Hydra's loader (``hydra_context.config_loader``).
    master : DictConfig
        The sweep's own config (what the launcher was set up with).
    """

    def __init__(self, config_loader: Any, master: DictConfig) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader, self.master = config_loader, master
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.templates: dict[tuple[str, ...], DictConfig] = {}

    def _is_value(self, override: Any) -> bool:
        """A plain value override (``a.b=1``, ``+a.b=1``), not a group choice or deletion."""
        from hydra.core.override_parser.types import OverrideType

        return (override.type in (OverrideType.CHANGE, OverrideType.ADD,
                                           OverrideType.FORCE_ADD)
                and override.package is None and not override.is_hydra_override()
                and not self.loader.repository.group_exists(override.key_or_group))

    def full(self, overrides: list[str]) -> DictConfig:
        """Hydra's own composition of one job."""
        cfg: DictConfig = self.loader.load_sweep_config(self.master, list(overrides))
        return cfg

    def __call__(self, overrides: list[str], num: int) -> DictConfig:
        """The config of job ``num`` with ``overrides``."""
        from hydra.core.override_parser.types import OverrideType

        parsed = self.parser.parse_overrides(list(overrides))
        signature = tuple(str(o.input_line) for o in parsed if not self._is_value(o))
        template = self.templates.get(signature)
        if template is None:
            cfg = self.full(overrides)
            self.templates[signature] = copy.deepcopy(cfg)
        else:
            cfg = copy.deepcopy(template)
            for o in parsed:
                if self._is_value(o):   # ADD too: the template has the key already
                    apply_value(cfg, o.key_or_group, o.value(), str(o.input_line),
                                force_add=o.type != OverrideType.CHANGE)
            app = [o for o in parsed if not o.is_hydra_override()]
            with read_write(cfg.hydra), open_dict(cfg.hydra):
                cfg.hydra.overrides.task = [o.input_line for o in app]
                naming = cfg.hydra.job.config.override_dirname
                cfg.hydra.job.override_dirname = override_dirname(
                    [(o.key_or_group, str(o.input_line)) for o in app], naming.kv_sep,
                    naming.item_sep, list(naming.exclude_keys))
            OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        with open_dict(cfg):
            cfg.hydra.job.id = num
            cfg.hydra.job.num = num
        return cfg


def apply_value(cfg: DictConfig, key: str, value: Any, line: str, force_add: bool) -> None:
    """Set one value override on a composed config, as Hydra's composition does (its
    ``ConfigLoaderImpl._apply_overrides_to_config`` is private: the same public
    ``OmegaConf.update`` here)."""
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.update(cfg, key, value, merge=True, force_add=force_add)
    except OmegaConfBaseException as exc:
        raise ConfigCompositionException(f"Error merging override {line}") from exc


def override_dirname(overrides: list[tuple[str, str]], kv_sep: str, item_sep: str,
                     exclude_keys: list[str]) -> str:
    """``hydra.job.override_dirname`` of ``(key, override line)`` pairs: the lines not in
    ``exclude_keys``, sorted, joined by ``item_sep``, ``=`` written as ``kv_sep`` (Hydra's
    rule, ``hydra/_internal/config_loader_impl.py``; it has no public function for it)."""
    lines = sorted(line for key, line in overrides if key not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)
