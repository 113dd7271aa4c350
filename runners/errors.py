"""Bad input, found before anything runs: one line saying what is wrong, exit code 2.

A leaf module: every layer may raise these, none of them imports anything of the project.
"""

from __future__ import annotations

import re
import sys


class ConfigError(ValueError):
    """A composed config that cannot run: bad input found before anything was submitted
    or recorded (the entry point turns it into one line and exit code 2)."""


class InputError(ValueError):
    """Bad command-line input of a ``bench`` verb: one line saying what is wrong and what
    would be right (the verb prints it and returns exit code 2)."""


class RunFailed(SystemExit):
    """A run (or a sweep) ended FAILED or KILLED; ``reason`` says where and why, the exit
    code is set (1: failed, 2: a sanity check failed, 130: interrupted)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code)
        self.reason = reason


class UsageExit(SystemExit):
    """Exit with code 2 after printing one line to stderr."""

    def __init__(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        super().__init__(2)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception on one line, cut to ``limit`` characters."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]


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
