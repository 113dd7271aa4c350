"""Notifications of ``bench regress --notify``: each new regression is sent once.

A regression is *new* while its step (the series and the first run of the new level) has
no ``notified.<metric>`` tag; that tag is set on the step's first run once a target took
the message, so the same step is not sent again every night, and the record of it travels
with the store.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from runners.analysis.annotations import NOTIFIED, now, tag_key
from runners.publish.notify import Alert, send
from runners.tracking.tracker import Tracker

if TYPE_CHECKING:
    import pandas as pd


def _text(value: Any) -> str | None:
    """A label as text; None for missing (None, NaN, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


def unit_of(frame: pd.DataFrame, metric: str) -> str:
    """The ``unit.<metric>`` tag (or that of its base, ``total_s`` of ``total_s.median``)."""
    for name in (metric, metric.rpartition(".")[0]):
        column = f"tag.unit.{name}"
        if name and column in frame.columns:
            units = frame[column].dropna()
            if len(units):
                return str(units.iloc[-1])
    return ""


def notified(long: pd.DataFrame, row: Any) -> bool:
    """Whether the step of a verdict row was notified before: a run of its series from
    the last run before the step on carries ``notified.<metric>`` (so a step that a later
    night places one run earlier or later is still the same step)."""
    series = long[(long["experiment"] == row.experiment) & (long["metric"] == row.metric)
                  & (long["machine"] == row.machine) & (long["fs"] == row.fs)
                  & (long["config_hash"] == row.config_hash)]
    start = series.index[series["run_id"] == _text(row.run_id_before)]
    since = series.loc[start[0]:] if len(start) else series
    return bool(since["notified"].notna().any())


def new_alerts(result: pd.DataFrame, long: pd.DataFrame, frame: pd.DataFrame,
               report_url: str | None) -> list[Alert]:
    """The regressions of ``result`` whose step was not notified before, as Alerts."""
    alerts = []
    for r in result[result["status"] == "regression"].itertuples(index=False):
        after = _text(r.run_id_after) or str(r.newest_run_id)
        if notified(long, r):
            continue
        alerts.append(Alert(
            experiment=str(r.experiment), machine=str(r.machine), fs=str(r.fs),
            config_hash=str(r.config_hash), metric=str(r.metric),
            unit=unit_of(frame, str(r.metric)), direction=str(r.direction),
            change=float(r.effect), baseline_median=float(r.baseline_median),
            latest_median=float(r.latest_median), commit_before=_text(r.commit_before),
            commit_after=_text(r.commit_after), run_before=_text(r.run_id_before) or "",
            run_after=after, confirmed=str(getattr(r, "confirmation", "") or ""),
            report_url=report_url))
    return alerts


def notify_new(result: pd.DataFrame, long: pd.DataFrame, frame: pd.DataFrame,
               targets: list[str], args: argparse.Namespace) -> None:
    """Send each regression not notified before to every target, then mark it notified.

    A step is marked (tag ``notified.<metric>`` on its first run) once one target took
    it; a receiver that is down gets its retries and one warning line.
    """
    fresh = new_alerts(result, long, frame, args.report_url)
    if not fresh:
        print("notify: no new regression to send", file=sys.stderr)
        return
    if args.dry_run:
        print(f"dry run: {len(fresh)} new regression(s) not sent to {', '.join(targets)}",
              file=sys.stderr)
        return
    delivered = []
    for target in targets:
        warning = send(target, fresh, environ=os.environ)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        else:
            delivered.append(target)
    if delivered:
        writer = Tracker(args.tracking_uri)
        for alert in fresh:
            writer.set_tags(alert.run_after, {
                tag_key(NOTIFIED, alert.metric): json.dumps(
                    {"at": now().isoformat(), "targets": delivered}, sort_keys=True)})
        print(f"notified {len(fresh)} new regression(s) to {', '.join(delivered)}",
              file=sys.stderr)


