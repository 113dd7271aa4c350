"""Hydra's own error text is held back until the work starts: the entry point folds a
composition error into one line (exit 2); once a task (or a sweep) starts, everything held
is written out and stderr flows again.  A leaf module: the sweep releases it too."""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO


class HeldStderr(io.StringIO):
    """Collects stderr until :func:`release`, then is replaced by the real stream."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real


_released = False


def hold() -> HeldStderr:
    """Replace ``sys.stderr`` by a :class:`HeldStderr` (until :func:`release`)."""
    global _released
    _released = False
    held = HeldStderr(sys.stderr)
    sys.stderr = held
    return held


def released() -> bool:
    """Whether the work started (then a non-zero exit is the work's, not Hydra's)."""
    return _released


def release() -> None:
    """The work starts: write out what was held, restore stderr, and point the logging
    handlers Hydra bound to the held stream back at it."""
    global _released
    _released = True
    held = sys.stderr
    if isinstance(held, HeldStderr):
        sys.stderr = held.real
        sys.stderr.write(held.getvalue())
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.StreamHandler) and handler.stream is held:
                    handler.setStream(held.real)
