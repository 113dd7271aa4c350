"""Annotations of benchmark series, kept as run tags so they travel with the store.

A user marks a step as intended (``bench baseline accept``) or silences a series for a
while (``bench baseline ignore``); ``bench regress`` records which steps it has notified.
Each is one tag on one run of the series, its value a small JSON object saying who, when
and why, so that the annotations are copied by ``publish``/``import`` and ``bench sync``
like every other tag, and no host keeps a file of its own:

``baseline.accepted.<metric>`` on the first run of the accepted level
    ``{"reason", "by", "at"}``: from this run on the series has a new reference.
``baseline.ignored.<metric>`` on the newest run when it was given
    ``{"reason", "by", "at", "until"}``: no verdict counts until ``until``.
``notified.<metric>`` on the first run of a notified step
    ``{"at", "targets"}``: the step is not notified again.

Pure functions over the runs table (pandas is imported inside them).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import getpass
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runners.analysis.series import SERIES_KEYS as SERIES

if TYPE_CHECKING:
    import pandas as pd

ACCEPTED = "baseline.accepted"
IGNORED = "baseline.ignored"
NOTIFIED = "notified"


def tag_key(kind: str, metric: str) -> str:
    """The tag of an annotation ``kind`` (:data:`ACCEPTED`, ...) of one metric."""
    return f"{kind}.{metric}"


def now() -> dt.datetime:
    """The current time, UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def note(reason: str, **extra: Any) -> str:
    """The JSON value of an annotation tag: ``reason``, ``by`` (the user), ``at`` (now)."""
    return json.dumps({"reason": reason, "by": getpass.getuser(), "at": now().isoformat(),
                       **extra}, sort_keys=True)


def parse_note(value: Any) -> dict[str, Any] | None:
    """An annotation tag's value as a dict; None for a missing or unreadable value."""
    if not isinstance(value, str) or not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return {"reason": value}
    return data if isinstance(data, dict) else {"reason": str(data)}


def id_column(frame: pd.DataFrame) -> pd.Series:
    """The printable identity of every row's series, the form ``--series`` patterns match:
    ``experiment/machine/fs/config.hash/metric``."""
    cols = ["experiment", "machine", "fs", "config_hash", "metric"]
    return frame[cols].astype(str).agg("/".join, axis=1)


def matching(ids: Iterable[str], pattern: str) -> list[str]:
    """The ids that match ``pattern`` (fnmatch: ``*``, ``?``), or equal it."""
    return sorted({i for i in ids if i == pattern or fnmatch.fnmatchcase(i, pattern)})


@dataclass(frozen=True)
class Ignore:
    """An active ``ignore`` of one series."""

    reason: str
    by: str
    at: str
    until: dt.datetime

    def text(self) -> str:
        """``ignored until 2027-01-01 by alice: <reason>``."""
        return f"ignored until {self.until:%Y-%m-%d %H:%M} UTC by {self.by}: {self.reason}"


def until_of(data: dict[str, Any]) -> dt.datetime | None:
    """The expiry of an ignore note (UTC), None when unreadable."""
    try:
        stamp = dt.datetime.fromisoformat(str(data.get("until")))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def annotate(long: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the annotation columns to a long series table (:func:`series_frame` rows).

    ``accepted``, ``ignored`` and ``notified`` hold the tag value of the row's run for
    the row's metric (NaN without one).
    """
    import pandas as pd

    out = long.copy()
    index = pd.Index(frame["run_id"])
    for column, kind in (("accepted", ACCEPTED), ("ignored", IGNORED),
                         ("notified", NOTIFIED)):
        values = pd.Series(pd.NA, index=out.index, dtype=object)
        for metric in out["metric"].unique():
            tag = f"tag.{tag_key(kind, metric)}"
            if tag not in frame.columns:
                continue
            rows = out["metric"] == metric
            found = frame[tag].to_numpy()[index.get_indexer(out.loc[rows, "run_id"])]
            values[rows] = found
        out[column] = values
    return out


def since_accepted(long: pd.DataFrame) -> pd.DataFrame:
    """The rows of each series from its newest accepted run on (every row without one).

    ``long`` must be ordered by start time and carry the ``accepted`` column of
    :func:`annotate`.
    """
    keys = [long[k] for k in SERIES]
    position = long.groupby(keys, sort=False).cumcount()
    newest = position.where(long["accepted"].notna()).groupby(keys).transform("max")
    return long[newest.isna() | (position >= newest)]


def active_ignores(long: pd.DataFrame, when: dt.datetime | None = None
                   ) -> dict[tuple[Any, ...], Ignore]:
    """``{series key: Ignore}`` for the series whose newest ignore note is still active."""
    when = when or now()
    found: dict[tuple[Any, ...], Ignore] = {}
    rows = long[long["ignored"].notna()]
    for key, group in rows.groupby(list(SERIES), sort=False):
        data = parse_note(group["ignored"].iloc[-1]) or {}
        until = until_of(data)
        if until is not None and until > when:
            found[tuple(key)] = Ignore(str(data.get("reason", "")), str(data.get("by", "?")),
                                       str(data.get("at", "")), until)
    return found


def describe_accept(value: Any) -> str:
    """``accepted by alice at 2026-12-01T10:00:00+00:00: <reason>``."""
    data = parse_note(value) or {}
    return f"accepted by {data.get('by', '?')} at {data.get('at', '?')}: " \
           f"{data.get('reason', '')}"
