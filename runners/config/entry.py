"""The Hydra entry wrapper: exit code 2 and one clear line for bad input.

Hydra reports composition errors (an unknown group option, a value of the wrong type)
over several lines and exits 1.  Before the task function starts, this wrapper holds
Hydra's error text back, folds it into one line and exits 2, so every kind of bad input
ends the same way.  Errors raised by our own validation (:class:`ConfigError`) exit 2 too.
"""

from __future__ import annotations

import functools
import io
import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from omegaconf import DictConfig

from runners.config.register import CONF_DIR, register_configs
from runners.errors import ConfigError, RunFailed, UsageExit, fold_hydra_error


class _HeldStderr(io.StringIO):
    """Collects stderr until the task starts, then passes everything through."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real


def _repoint_log_handlers(old: TextIO, new: TextIO) -> None:
    """Point logging handlers that Hydra bound to the held stream back to stderr."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


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
    started = False

    def wrapped(cfg: DictConfig) -> Any:
        nonlocal started
        if not started:
            started = True
            held = sys.stderr
            if isinstance(held, _HeldStderr):
                sys.stderr = held.real
                sys.stderr.write(held.getvalue())
                _repoint_log_handlers(held, held.real)
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
        held = _HeldStderr(sys.stderr)
        sys.stderr = held
        try:
            return main()
        except SystemExit as exc:
            if isinstance(sys.stderr, _HeldStderr):
                sys.stderr = held.real
                text = held.getvalue()
                composing = not started and not isinstance(exc, UsageExit | RunFailed)
                if exc.code not in (0, None) and composing:   # Hydra's own error text
                    raise UsageExit(fold_hydra_error(text)) from None
                sys.stderr.write(text)
            raise
        finally:
            if isinstance(sys.stderr, _HeldStderr):
                sys.stderr = held.real
                sys.stderr.write(held.getvalue())

    return entry
