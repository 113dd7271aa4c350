"""What the ``bench`` verbs share: default paths, common options, one-line errors, and
reading the selected runs of a store."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from runners.analysis.table import (
    FORMATS,
    filter_where,
    label,
    listing,
    parse_list,
    parse_since,
    parse_where,
    resolve_column,
)
from runners.config.schema import PROJECT_ROOT
from runners.errors import InputError
from runners.tracking.query import StoreReader
from runners.tracking.store import local_store_paths

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_URI = f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"
DEFAULT_ARTIFACTS = str(PROJECT_ROOT / "mlruns" / "artifacts")
DEFAULT_SPOOL = str(PROJECT_ROOT / "mlruns" / "spool")


class Verb(Protocol):
    """A verb's module: it registers its sub-parser(s), each with ``func`` as default."""

    def add_parser(self, verbs: argparse._SubParsersAction) -> None:
        """Register the verb(s) on ``bench``'s sub-parsers."""


def parser(verbs: Sequence[Verb], description: str = "") -> argparse.ArgumentParser:
    """The ``bench`` argument parser with the sub-parsers of ``verbs``."""
    parser = argparse.ArgumentParser(prog="bench", description=description)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in verbs:
        module.add_parser(sub)
    return parser


def run_verb(verbs: Sequence[Verb], argv: Sequence[str]) -> int:
    """Parse ``argv`` with ``verbs`` and run the verb it names; its exit code."""
    args = parser(verbs).parse_args(list(argv))
    return int(args.func(args))


def fail(message: str) -> int:
    """Print the one-line error and return exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def choice(option: str, value: str, choices: Sequence[str]) -> str:
    """``value`` (case-insensitive) if it is one of ``choices``, else InputError."""
    for item in choices:
        if value.lower() == item.lower():
            return item
    raise InputError(f"{option} {value!r} is not valid; use one of {', '.join(choices)}")


def number_option(option: str, text: str | None, low: float, high: float, *,
                  low_inclusive: bool = False, percent: bool = False,
                  example: str = "") -> float | None:
    """A number option between ``low`` and ``high`` (``5%`` allowed when ``percent``);
    ``example`` is the value the error message suggests.

    Returns None when the option is unset.
    """
    if text is None:
        return None
    word = text.strip()
    try:
        value = float(word[:-1]) / 100 if percent and word.endswith("%") else float(word)
    except ValueError:
        value = math.nan
    above = value >= low if low_inclusive else value > low
    if not (above and value <= high):
        bracket = "[" if low_inclusive else "("
        example = example or ("0.05 or 5%" if percent else "0.05")
        raise InputError(f"{option} {text!r} is not a number in {bracket}{low:g}, {high:g}]; "
                         f"e.g. {option} {example}")
    return value


def whole_option(option: str, text: str | None, low: int) -> int | None:
    """A whole-number option ``>= low``, None if unset."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise InputError(f"{option} {text!r} is not a whole number >= {low}; "
                         f"e.g. {option} {max(low, 5)}")
    return value


def add_store(p: argparse.ArgumentParser) -> None:
    """``--tracking-uri`` (default: the embedded store)."""
    p.add_argument("--tracking-uri", default=DEFAULT_URI,
                   help="MLflow tracking URI (default: the embedded store %(default)s)")


def open_store(uri: str) -> StoreReader:
    """A reader of the store at ``uri``; a SQLite file that does not exist is an InputError."""
    db = local_store_paths(uri)
    if db is not None and not db.is_file():
        raise InputError(f"no store at {db}; run `python run.py` first or pass "
                         "--tracking-uri sqlite:///PATH/mlflow.db")
    return StoreReader(uri)


def add_selection(p: argparse.ArgumentParser) -> None:
    """The store and the options that select runs: experiment, where, since, format."""
    add_store(p)
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="an experiment (benchmark) name; repeat or comma-separate for "
                        "several (default: all experiments)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE",
                   help="keep runs whose tag (else param) KEY equals VALUE, e.g. "
                        "machine=local or bench.ranks=2; repeatable: different keys must "
                        "all match, a repeated key matches any of its values")
    p.add_argument("--since", metavar="WHEN",
                   help="only runs started since an ISO date (2025-01-31, UTC) or an age "
                        "(7d, 12h, 30m, 2w)")
    p.add_argument("--format", default="table", metavar="{" + ",".join(FORMATS) + "}",
                   help="output format (default: %(default)s)")


#: The columns a verb's analysis reads, by verb (besides those its options name: see
#: :func:`named_columns`); a verb not listed reads every column.  ``{fom}`` stands for each
#: figure of merit the store's runs declare (tag ``fom``).  With 100,000 runs a store holds
#: ~2 million tag/param/metric values, and reading them is most of a verb's time.
VERB_COLUMNS: dict[str, tuple[str, ...]] = {
    # the headline figure of merit of each benchmark, else total_s.median (compare's
    # fallback); the --by/--columns/--where keys
    "compare": ("tag.fom", "metric.{fom}", "metric.{fom}.median", "metric.total_s.median"),
    # the figures of merit (every *.median of runs that declare none), the series keys,
    # commits and better directions
    "regress": ("tag.fom", "metric.{fom}", "metric.{fom}.median", "metric.*.median",
                "tag.machine", "tag.fs", "tag.config.hash", "tag.git.commit",
                "tag.direction.*", "tag.unit.*", "tag.baseline.*", "tag.notified.*"),
}
# the same series, references and annotations
VERB_COLUMNS["baseline"] = VERB_COLUMNS["regress"]


#: Options under which a verb matches runs by their whole configuration (A/B comparison
#: of ``compare --baseline/--contender``): every column is read.
WHOLE_RUN_OPTIONS = ("baseline", "contender")


def named_columns(args: argparse.Namespace) -> list[str]:
    """Every column the options ``--where``, ``--by``, ``--columns`` and ``--metric`` may
    refer to (a key as tag, as param, or a full column name; a metric or its median), as
    patterns of :meth:`StoreReader.runs_table`."""
    from glob import escape

    names = [key for key, _ in parse_where(getattr(args, "where", None) or [])]
    for option in ("by", "columns"):
        names += parse_list(getattr(args, option, None) or "")
    metrics = getattr(args, "metric", None) or []
    metrics = [m for item in ([metrics] if isinstance(metrics, str) else metrics)
               for m in parse_list(item)]
    return [*(escape(column) for n in names for column in (n, f"tag.{n}", f"param.{n}")),
            *(escape(column) for m in metrics for column in (f"metric.{m}",
                                                              f"metric.{m}.median"))]


def verb_columns(args: argparse.Namespace, reader: StoreReader | None = None
                 ) -> list[str] | None:
    """The columns :func:`load_runs` reads for the verb of ``args`` (None: all).

    ``{fom}`` is expanded with the figures of merit of ``reader``'s store; without a
    reader, or for a store that cannot list them without a full read, every metric is read.
    """
    from glob import escape

    fixed = VERB_COLUMNS.get(str(getattr(args, "verb", "")))
    if fixed is None or any(getattr(args, o, None) for o in WHOLE_RUN_OPTIONS):
        return None
    declared = None if reader is None else reader.tag_values("fom")
    foms = sorted({n for value in declared or [] for n in value.split(",") if n})
    columns: list[str] = []
    for column in fixed:
        if "{fom}" not in column:
            columns.append(column)
        elif declared is None:
            columns.append("metric.*")
        else:
            columns += [column.replace("{fom}", escape(n)) for n in foms]
    return list(dict.fromkeys([*columns, *named_columns(args)]))


def load_runs(args: argparse.Namespace, status: str | None, status_option: bool = True,
              columns: Sequence[str] | None = None
              ) -> tuple[StoreReader, pd.DataFrame, str]:
    """Open the store and read the selected runs: ``(reader, runs table, description)``.

    The table is filtered by ``args.where`` too; an empty result is an InputError (whose
    hint names ``--status any`` when the command has that option).  Only ``columns``
    (names or patterns, see :meth:`StoreReader.runs_table`) are read, by default those of
    :func:`verb_columns`.
    """
    reader = open_store(args.tracking_uri)
    where = parse_where(args.where or [])
    since = None if args.since is None else parse_since(args.since)
    experiments = None
    if args.experiment:
        experiments = [name for item in args.experiment for name in parse_list(item)] or None
    try:
        frame = reader.runs_table(
            experiments, status=status,
            since_ms=None if since is None else since.value // 10**6,
            columns=verb_columns(args, reader) if columns is None else columns)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    described = [f"experiment={','.join(experiments) if experiments else 'all'}",
                 f"status={status or 'any'}"]
    if since is not None:
        described.append(f"since={since.strftime('%Y-%m-%d %H:%M')} UTC")
    described += [f"{k}={v}" for k, v in where]
    text = ", ".join(described)
    if frame.empty:
        hints = ["--status any"] if status and status_option else []
        hints += ["an earlier --since"] if since is not None else []
        hint = f"; try {' or '.join(hints)}" if hints else ""
        raise InputError(f"no runs match: {text}{hint}")
    wanted: dict[str, list[str]] = {}
    for key, value in where:
        wanted.setdefault(resolve_column(frame, key, "--where"), []).append(value)
    matched = filter_where(frame, wanted)
    if matched.empty:
        notes = []
        for column, values in wanted.items():
            have = sorted({str(v) for v in frame[column].dropna()})
            if not set(values) & set(have):
                notes.append(f"{label(column)} has {listing(have, 8)}")
        raise InputError(f"no runs match: {text}" + (f" ({'; '.join(notes)})" if notes else ""))
    return reader, matched, text


def write(text: str, output: str | None) -> None:
    """Text to a file (creating its directory) or stdout."""
    from pathlib import Path

    if output is None or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
