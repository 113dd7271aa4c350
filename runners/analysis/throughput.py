"""Throughput and utilization from task state transitions (pure functions over frames).

The input is the ``events.csv`` of one or more runs (:mod:`runners.run.task_events`): one
row per transition with ``task``, ``state`` and ``time`` (Unix seconds); several runs may be
concatenated with a ``run_id`` column.  As Balsam's ``throughput_report`` and
``utilization_report``: throughput is the number of tasks completed over time,
utilization the number of tasks running at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

END_STATES = ("done", "failed")


def _task_key(events: pd.DataFrame) -> pd.Series:
    if "run_id" in events:
        return events["run_id"].astype(str) + "/" + events["task"].astype(str)
    return events["task"].astype(str)


def intervals(events: pd.DataFrame) -> pd.DataFrame:
    """Per task: when it started running and when it ended (``start``, ``end``, ``state``).

    A task without a ``running`` stamp (e.g. one that failed) starts at ``launched``.
    Tasks that never ended are left out.
    """
    import pandas as pd

    ev = events.assign(key=_task_key(events))
    first = ev.pivot_table(index="key", columns="state", values="time", aggfunc="min")
    start = first.get("running", pd.Series(dtype=float)).combine_first(
        first.get("launched", pd.Series(dtype=float)))
    ends = ev[ev["state"].isin(END_STATES)].groupby("key").agg(end=("time", "max"),
                                                               state=("state", "last"))
    out = ends.join(start.rename("start"), how="inner").dropna(subset=["start"])
    return out.reset_index()[["key", "start", "end", "state"]]


def throughput(events: pd.DataFrame) -> pd.DataFrame:
    """Tasks completed over time: ``time`` (s since the first event) and ``completed``."""
    import pandas as pd

    t0 = float(events["time"].min())
    done = events[events["state"] == "done"]["time"].sort_values() - t0
    return pd.DataFrame({"time": [0.0, *done.tolist()],
                         "completed": list(range(len(done) + 1))})


def utilization(events: pd.DataFrame) -> pd.DataFrame:
    """Tasks running at once over time: ``time`` (s since the first event) and ``busy``."""
    import pandas as pd

    t0 = float(events["time"].min())
    iv = intervals(events)
    steps = sorted([(s - t0, 1) for s in iv["start"]] + [(e - t0, -1) for e in iv["end"]],
                   key=lambda p: (p[0], p[1]))
    busy, rows = 0, [(0.0, 0)]
    for t, delta in steps:
        busy += delta
        rows.append((t, busy))
    return pd.DataFrame(rows, columns=["time", "busy"])


def summary(events: pd.DataFrame) -> dict[str, float]:
    """Tasks, completed, failed, makespan (s), mean throughput (tasks/s), mean and peak busy."""
    iv = intervals(events)
    span = float(events["time"].max() - events["time"].min())
    util = utilization(events)
    mean_busy = 0.0
    if span > 0 and len(util) > 1:
        widths = util["time"].diff().shift(-1).fillna(0.0)
        mean_busy = float((util["busy"] * widths).sum() / span)
    completed = int((iv["state"] == "done").sum())
    return {"tasks": float(_task_key(events).nunique()), "completed": float(completed),
            "failed": float((iv["state"] == "failed").sum()), "makespan_s": span,
            "throughput_per_s": completed / span if span > 0 else 0.0,
            "mean_busy": mean_busy, "peak_busy": float(util["busy"].max())}
