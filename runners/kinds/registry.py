"""Which benchmark kinds exist, and the kind of a config.

A kind is found three ways:

* a module of this package that sets ``KIND = <its Kind class>`` (the built-in kinds);
* an entry point of the group :data:`ENTRY_POINTS` in an installed distribution, e.g. in
  a user's ``pyproject.toml``::

      [project.entry-points."hpc_bench.kinds"]
      stream = "mybench.kinds:Stream"

* ``bench.kind=package.module:Class`` in a config, importable from ``sys.path``.

Registered kinds (the first two) get their schema stored as ``bench/<name>_schema`` and,
when ``conf/bench/`` has no YAML of that name, as ``bench/<name>`` itself, so
``python run.py bench=<name>`` works with the schema's defaults.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from functools import cache
from importlib import metadata

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from runners.errors import ConfigError, one_line
from runners.kinds.base import Kind

ENTRY_POINTS = "hpc_bench.kinds"
#: Modules of this package that hold no kind.
NOT_KINDS = ("base", "registry")


@cache
def registry() -> tuple[dict[str, type[Kind]], dict[str, str]]:
    """``({name: Kind class}, {name: why it failed to load})`` of every registered kind.

    Built-in kinds come first; an entry point with a built-in name is refused (listed
    with the reason), as is one that fails to import.
    """
    kinds: dict[str, type[Kind]] = {}
    broken: dict[str, str] = {}
    package = sys.modules[__package__ or "runners.kinds"]
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in NOT_KINDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if isinstance(kind, type) and issubclass(kind, Kind):
            kinds[kind.name or info.name] = kind
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        if entry.name in kinds:
            broken[entry.name] = (f"entry point {entry.value} has the name of a built-in kind; "
                                  "rename it")
            continue
        try:
            loaded = entry.load()
        except Exception as exc:       # a user's module: any error is theirs to read
            broken[entry.name] = f"cannot import {entry.value}: {one_line(exc)}"
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, Kind)):
            broken[entry.name] = f"{entry.value} is not a subclass of runners.kinds.base.Kind"
            continue
        kinds[entry.name] = loaded
    return dict(sorted(kinds.items())), broken


def names() -> list[str]:
    """The names of the registered kinds, sorted."""
    return list(registry()[0])


def load_class(spec: str) -> type[Kind]:
    """The Kind class named ``package.module:Class``.

    Raises
    ------
    ConfigError
        When the module fails to import or has no such Kind subclass.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"bench.kind={spec!r}: cannot import {module_name}: "
                          f"{one_line(exc)}") from None
    kind = getattr(module, attr, None)
    if not (isinstance(kind, type) and issubclass(kind, Kind)):
        raise ConfigError(f"bench.kind={spec!r}: {module_name} has no Kind subclass named "
                          f"{attr!r}")
    return kind


def kind_class(name: str) -> type[Kind]:
    """The class of a kind name (registered, or ``package.module:Class``).

    Raises
    ------
    ConfigError
        One line listing the registered kinds when ``name`` is none of them.
    """
    kinds, broken = registry()
    if name in kinds:
        return kinds[name]
    if name in broken:
        raise ConfigError(f"bench.kind={name!r}: {broken[name]}")
    if ":" in name:
        return load_class(name)
    raise ConfigError(f"bench.kind={name!r} is not a registered kind; registered: "
                      f"{', '.join(kinds)}; or name a class as bench.kind=package.module:Class")


def kind_of(cfg: DictConfig) -> Kind:
    """The kind of an experiment config, its ``bench`` section checked against the kind's
    schema (defaults filled in, e.g. for a ``module:Class`` kind composed without one).

    Raises
    ------
    ConfigError
        On an unknown kind, or a ``bench`` section that does not fit its schema.
    """
    cls = kind_class(str(cfg.bench.kind))
    composed = OmegaConf.get_type(cfg.bench)
    if not (isinstance(composed, type) and issubclass(composed, cls.schema)):
        try:
            typed = OmegaConf.merge(OmegaConf.structured(cls.schema), cfg.bench)
        except OmegaConfBaseException as exc:
            reason = " ".join(str(exc).split("\n")[0].split())
            raise ConfigError(f"bench does not fit the schema of kind {cfg.bench.kind!r} "
                              f"({cls.schema.__name__}): {reason}") from None
        with open_dict(cfg):
            cfg.bench = typed
    missing = sorted(OmegaConf.missing_keys(cfg.bench))
    if missing:
        raise ConfigError(f"bench.{missing[0]} is missing; kind {cfg.bench.kind!r} needs it, "
                          f"e.g. +bench.{missing[0]}=<value>")
    return cls(cfg)
