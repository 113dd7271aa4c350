"""``bench schedule``: crontab lines that run one random point of a sweep matrix every period.

Each line calls ``run.py -m select=random <overrides>``, a Hydra multirun that runs ONE job
drawn at random from the matrix the overrides span.  Run from cron every few hours, the draws
cover the matrix over time and over the time of day, so results converge without a dedicated
reservation.  No ``seed=`` is passed: a seed would make every draw the same point.

The module only prints; install the output with ``crontab -l | cat - FILE | crontab -``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from runners.config.schema import PROJECT_ROOT

#: Hour (local time) at which daily and weekly entries start: quiet hours on most machines.
QUIET_HOUR = 3
#: Minutes between the start minutes of consecutive entries (entry i starts at i*20 % 60).
STAGGER_MIN = 20

_CRON_CHARS = frozenset("0123456789*/,-")
_HOUR_STEPS = tuple(n for n in range(1, 25) if 24 % n == 0)
_MINUTE_STEPS = tuple(n for n in range(1, 61) if 60 % n == 0)
_VALID_FORMS = (
    f"use {', '.join(f'{n}h' for n in _HOUR_STEPS[:-1])} or {_HOUR_STEPS[-1]}h, "
    "Nm (N divides 60), 1d, 1w, or a 5-field cron expression"
)
_FORBIDDEN = {
    "-m": "the schedule adds -m (multirun) itself",
    "--multirun": "the schedule adds --multirun (-m) itself",
    "select": "the schedule adds select=random itself",
    "seed": "a seed would make every draw the same point",
}


def parse_period(text: str, minute: int = 0) -> str:
    """Turn a period into the five cron time fields.

    Parameters
    ----------
    text : str
        ``Nm`` (N divides 60, e.g. ``15m`` -> ``*/15 * * * *``), ``Nh`` (N divides 24, e.g.
        ``6h`` -> ``M */6 * * *``), ``1d``/``daily``/``24h`` (``M 3 * * *``),
        ``1w``/``weekly`` (``M 3 * * 0``), or a raw 5-field cron expression, returned verbatim
        (fields of ``0-9*/,-`` only).  Case and surrounding blanks are ignored.
    minute : int, optional
        Start minute ``M`` for periods of an hour or longer (default 0).  Minute periods keep
        their step and ignore it; a raw cron expression ignores it.

    Returns
    -------
    str
        Five space-separated cron fields (minute hour day-of-month month day-of-week).

    Raises
    ------
    ValueError
        With one line naming the problem and the valid forms.
    """
    if not 0 <= minute <= 59:
        raise ValueError(f"start minute {minute} is outside 0-59")
    raw = text.strip()
    fields = raw.split()
    if len(fields) > 1:
        return _check_cron(raw, fields)
    word = raw.lower()
    if word in ("daily", "1d", "24h"):
        return f"{minute} {QUIET_HOUR} * * *"
    if word in ("weekly", "1w"):
        return f"{minute} {QUIET_HOUR} * * 0"
    if len(word) >= 2 and word[:-1].isdigit() and word[-1] in "mhdw":
        count, unit = int(word[:-1]), word[-1]
        if count == 0:
            raise ValueError(f"period {text!r} is zero; {_VALID_FORMS}")
        if unit == "m":
            if count not in _MINUTE_STEPS:
                steps = ", ".join(str(n) for n in _MINUTE_STEPS)
                raise ValueError(f"period {text!r} does not divide an hour; use Nm with N in "
                                 f"{steps}, or Nh, 1d, 1w, or a 5-field cron expression")
            if count == 60:
                return f"{minute} * * * *"
            return "* * * * *" if count == 1 else f"*/{count} * * * *"
        if unit == "h":
            if count not in _HOUR_STEPS:
                raise ValueError(f"period {text!r} does not divide a day; {_VALID_FORMS}")
            return f"{minute} * * * *" if count == 1 else f"{minute} */{count} * * *"
        raise ValueError(f"period {text!r} is not supported (only 1{unit}); {_VALID_FORMS}")
    raise ValueError(f"period {text!r} is not understood; {_VALID_FORMS}")


def _check_cron(raw: str, fields: list[str]) -> str:
    """Validate a raw cron expression: exactly five fields of cron characters."""
    if len(fields) != 5:
        raise ValueError(f"cron expression {raw!r} has {len(fields)} fields, expected 5 "
                         "(minute hour day-of-month month day-of-week); or use Nm, Nh, 1d, 1w")
    for value in fields:
        if not set(value) <= _CRON_CHARS:
            raise ValueError(f"cron field {value!r} in {raw!r} may only use the characters "
                             "0-9 * / , -; or use Nm, Nh, 1d, 1w")
    return " ".join(fields)


def _slug(period: str, index: int) -> str:
    """The log-file name part for a period: ``6h``, ``1d``, ``1w``, ``15m`` or ``cron<index>``."""
    word = period.strip().lower()
    if len(word.split()) > 1:
        return f"cron{index}"
    return {"daily": "1d", "24h": "1d", "weekly": "1w", "60m": "1h"}.get(word, word)


def _overrides(text: str) -> list[str]:
    """Split the overrides of one entry and reject what the schedule adds itself."""
    if "\n" in text or "\r" in text:
        raise ValueError("overrides must be on one line (a crontab entry is one line)")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split overrides {text!r}: {exc}") from None
    for word in words:
        key = word if word.startswith("-") else word.split("=", 1)[0].lstrip("+~")
        if key in _FORBIDDEN:
            raise ValueError(f"overrides {text!r} contain {word!r}: {_FORBIDDEN[key]}; "
                             "give only the sweep overrides, e.g. 'bench.ranks=1,2'")
    return words


def _crontab_escape(command: str) -> str:
    """Escape ``%``, which cron turns into a newline (and stdin) unless preceded by ``\\``."""
    return command.replace("%", "\\%")


def crontab_lines(entries: list[str], project: Path, python: Path, log_dir: Path,
                  lock: Path | None = None) -> list[str]:
    """One crontab line per ``PERIOD:OVERRIDES`` entry, each running one random draw.

    Start minutes are staggered so entries do not start together: entry ``i`` starts at
    minute ``(i * 20) % 60`` of its period (minute periods such as ``15m`` keep their
    ``*/15`` step instead).  Daily and weekly entries run at 03:00 plus that offset, in quiet
    hours; weekly ones on Sunday.  Each line is::

        FIELDS cd PROJECT && mkdir -p LOG_DIR LOCK_DIR && flock -n LOCK PYTHON run.py -m
        select=random OVERRIDES... >> LOG_DIR/cron-SLUG.log 2>&1

    ``flock -n`` skips a draw while the previous one still holds the lock, so draws never
    pile up on the machine.  Every override is split with :func:`shlex.split` and re-quoted
    with :func:`shlex.quote`, so a value cannot inject shell syntax; ``%`` is escaped for cron.

    Parameters
    ----------
    entries : list of str
        ``PERIOD:OVERRIDES``, e.g. ``'6h:bench.ranks=1,2 bench.trials=3'``; see
        :func:`parse_period` for periods.  Empty overrides run the default job.  Overrides
        must not contain ``-m``/``--multirun``, ``select=`` or ``seed=``.
    project : Path
        The project root (holding ``run.py``); the command runs from it.
    python : Path
        The interpreter that runs ``run.py``.
    log_dir : Path
        Directory of the ``cron-SLUG.log`` files (SLUG: ``6h``, ``1d``, ``cron<index>`` for
        raw cron expressions; a repeated slug gets ``-<index>``).
    lock : Path, optional
        The lock file shared by all entries (default ``PROJECT/.cache/cron.lock``).

    Returns
    -------
    list of str
        The crontab lines, without newlines.

    Raises
    ------
    ValueError
        One line naming the bad entry and what would be right.
    """
    lock = lock if lock is not None else project / ".cache" / "cron.lock"
    for path in (project, python, log_dir, lock):
        if "\n" in str(path) or "\r" in str(path):
            raise ValueError(f"path {str(path)!r} contains a line break; "
                             "a crontab entry is one line")
    q = shlex.quote
    lines: list[str] = []
    used: set[str] = set()
    for index, entry in enumerate(entries):
        period, sep, overrides = entry.partition(":")
        if not sep:
            raise ValueError(f"entry {entry!r} has no ':'; write PERIOD:OVERRIDES, "
                             "e.g. '6h:bench.ranks=1,2'")
        if not period.strip():
            raise ValueError(f"entry {entry!r} has an empty period; write PERIOD:OVERRIDES, "
                             "e.g. '6h:bench.ranks=1,2'")
        nightly = overrides.strip().split(" ", 1)[0] == "nightly"
        try:
            fields = parse_period(period, minute=(index * STAGGER_MIN) % 60)
            words = (shlex.split(overrides.strip()[len("nightly"):]) if nightly
                     else _overrides(overrides))
        except ValueError as exc:
            raise ValueError(f"entry {index + 1} ({entry!r}): {exc}") from None
        slug = ("nightly-" if nightly else "") + _slug(period, index)
        if slug in used:
            slug = f"{slug}-{index}"
        used.add(slug)
        argv = ([str(python), "-m", "runners.cli", "nightly", *words] if nightly
                else [str(python), "run.py", "-m", "select=random", *words])
        log = log_dir / f"cron-{slug}.log"
        command = (f"cd {q(str(project))} && mkdir -p {q(str(log_dir))} {q(str(lock.parent))}"
                   f" && flock -n {q(str(lock))} {' '.join(q(a) for a in argv)}"
                   f" >> {q(str(log))} 2>&1")
        lines.append(f"{fields} {_crontab_escape(command)}")
    return lines


def crontab_text(entries: list[str], project: Path, python: Path, log_dir: Path,
                 lock: Path | None = None) -> str:
    """A commented header plus :func:`crontab_lines`, ending in a newline.

    Parameters
    ----------
    entries, project, python, log_dir, lock
        As for :func:`crontab_lines`.

    Returns
    -------
    str
        Text ready to append to a crontab.
    """
    header = [
        "# bench schedule: random draws from the sweep matrix; install with: "
        "crontab -l | cat - <this> | crontab -",
        "# each line runs ONE job (run.py -m select=random, no seed); flock -n skips a draw "
        "while the previous one runs",
    ]
    return "\n".join(header + crontab_lines(entries, project, python, log_dir, lock)) + "\n"


def cmd_schedule(args: argparse.Namespace) -> int:
    """Print crontab lines that run one random point of a sweep matrix every period.

    Each PERIOD:OVERRIDES entry becomes a line calling `run.py -m select=random OVERRIDES`
    (no seed, so each draw differs). PERIOD is Nm (N divides 60), Nh (N divides 24),
    1d/daily or 1w/weekly (at 03:00, quiet hours), or a quoted 5-field cron expression.
    Entries start 20 minutes apart; flock -n skips a draw while the previous one runs.
    An entry 'PERIOD:nightly ARGS' calls `bench nightly ARGS` instead.
    """
    project = Path(args.project)
    if args.python is not None:
        python = Path(args.python)
    else:
        venv = project / ".venv" / "bin" / "python"
        python = venv if venv.exists() else Path(sys.executable)
    log_dir = Path(args.log_dir) if args.log_dir is not None else project / "logs"
    try:
        text = crontab_text(list(args.entries), project, python, log_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register the ``schedule`` verb on a ``bench`` sub-parser action.

    Parameters
    ----------
    verbs : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.
    """

    doc = cmd_schedule.__doc__ or ""
    p = verbs.add_parser("schedule", help=doc.splitlines()[0], description=doc)
    p.add_argument("entries", nargs="+", metavar="PERIOD:OVERRIDES",
                   help="e.g. '6h:bench.ranks=1,2 bench.trials=3' or "
                        "'1d:bench=osu bench.ranks=2,4'")
    p.add_argument("--project", type=Path, default=PROJECT_ROOT,
                   help="project root holding run.py (default: %(default)s)")
    p.add_argument("--python", type=Path, default=None,
                   help="interpreter for run.py (default: PROJECT/.venv/bin/python if it "
                        "exists, else this interpreter)")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="directory of the cron-*.log files (default: PROJECT/logs)")
    p.set_defaults(func=cmd_schedule)
