"""The Hydra entry wrapper: exit code 2 and one clear line for bad input.

Hydra reports composition errors (an unknown group option, a value of the wrong type)
over several lines and exits 1.  Before the task function starts, this wrapper holds
Hydra's error text back, folds it into one line and exits 2, so every kind of bad input
ends the same way.  Errors raised by our own validation (:class:`ConfigError`) exit 2 too.
"""

from __future__ import annotations

import functools
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


class ConfigError(ValueError):
    """Bad input found before anything was submitted or recorded."""


class UsageExit(SystemExit):
    """Exit with code 2 after printing one line to stderr."""

    def __init__(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        super().__init__(2)


def fold_hydra_error(text: str) -> str:
    """Fold Hydra's multi-line error text into one line.

    Parameters
    ----------
    text : str
        What Hydra wrote to stderr.

    Returns
    -------
    str
        One line, without the HYDRA_FULL_ERROR hint and stack noise.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    keep: list[str] = []
    for ln in lines:
        if ln.startswith("Config search path"):
            break   # the search path list that follows is noise for a user
        if ln and "HYDRA_FULL_ERROR" not in ln and not ln.startswith(
                ("reference_type=", "object_type=", "Traceback")):
            keep.append(ln)
    if not keep:
        return "invalid configuration"
    first = re.sub(r"^In '[^']+': ", "", keep[0])
    rest = keep[1:]
    m = re.match(r"Available options in '(.+)':", rest[0]) if rest else None
    if m:
        return f"{first}; valid options for {m.group(1)}: {', '.join(rest[1:])}"
    return "; ".join([first, *rest])


class _HeldStderr(io.StringIO):
    """Collects stderr until the task starts, then passes everything through."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self.real = real


def _repoint_log_handlers(old: Any, new: Any) -> None:
    """Point logging handlers that Hydra bound to the held stream back to stderr."""
    import logging

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

    def wrapped(cfg: Any) -> Any:
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

        from runners.schema import register_configs

        register_configs()
        main = hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")(wrapped)
        held = _HeldStderr(sys.stderr)
        sys.stderr = held
        try:
            return main()
        except SystemExit as exc:
            if isinstance(sys.stderr, _HeldStderr):
                sys.stderr = held.real
                text = held.getvalue()
                if exc.code not in (0, None) and not started and not isinstance(exc, UsageExit):
                    raise UsageExit(fold_hydra_error(text)) from None
                sys.stderr.write(text)
            raise
        finally:
            if isinstance(sys.stderr, _HeldStderr):
                sys.stderr = held.real
                sys.stderr.write(held.getvalue())

    return entry
