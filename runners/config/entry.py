"""The Hydra entry wrapper: exit code 2 and one clear line for bad input.

Hydra reports composition errors (an unknown group option, a value of the wrong type)
over several lines and exits 1.  Before the task function starts, this wrapper holds
Hydra's error text back, folds it into one line and exits 2, so every kind of bad input
ends the same way.  Errors raised by our own validation (:class:`ConfigError`) exit 2 too.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from runners.config.console import HeldStderr, hold, release, released
from runners.config.register import CONF_DIR, register_configs
from runners.errors import ConfigError, RunFailed, UsageExit, fold_hydra_error


def hydra_main(task: Callable[[Any], Any]) -> Callable[[], Any]:
    """Decorate ``task`` like ``hydra.main`` with this project's conf/ and error policy.

    Parameters
    ----------
    task : callable
        The task function, called with the composed ``DictConfig``.

    Returns
    -------
    callable
        A no-argument entry point for ``if __name__ == "__main__"``.
    """
    def wrapped(cfg: DictConfig) -> Any:
        release()
        try:
            return task(cfg)
        except ConfigError as exc:
            raise UsageExit(str(exc)) from None

    @functools.wraps(task)
    def entry() -> Any:
        import hydra

        register_configs()
        main = hydra.main(version_base=None, config_path=str(CONF_DIR),
                          config_name="config")(wrapped)
        held = hold()
        try:
            return main()
        except SystemExit as exc:
            if isinstance(sys.stderr, HeldStderr):
                sys.stderr = held.real
                text = held.getvalue()
                composing = not released() and not isinstance(exc, UsageExit | RunFailed)
                if exc.code not in (0, None) and composing:   # Hydra's own error text
                    raise UsageExit(fold_hydra_error(text)) from None
                sys.stderr.write(text)
            raise
        finally:
            if isinstance(sys.stderr, HeldStderr):
                sys.stderr = held.real
                sys.stderr.write(held.getvalue())

    return entry


def compose(overrides: list[str]) -> DictConfig:
    """The project's config composed with ``overrides`` (for verbs that need one, e.g.
    ``bench site start``); a composition error is a ConfigError with Hydra's text on one
    line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(fold_hydra_error(str(exc))) from None
