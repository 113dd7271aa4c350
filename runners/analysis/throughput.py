"""Throughput and utilization from task state transitions (pure functions over frames).

The input is the ``events.csv`` of one or more runs (:mod:`runners.run.task_events`): one
row per transition with ``task``, ``state`` and ``time`` (Unix seconds); several runs may be
concatenated with a ``run_id`` column.  As Balsam's ``throughput_report`` and
``utilization_report``: throughput is the number of tasks completed over time,
utilization the number of tasks running at once.

Runs queued through a site agent carry the tags ``site``, ``site.queued_at`` and
``site.claimed_at`` (Unix seconds); :func:`site_summaries`, :func:`throughput_by` and
:func:`utilization_by` report per site across runs, as Balsam's multi-site analytics.
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


def throughput(events: pd.DataFrame, t0: float | None = None) -> pd.DataFrame:
    """Tasks completed over time: ``time`` (s since ``t0``, by default the first event) and
    ``completed``."""
    import pandas as pd

    t0 = float(events["time"].min()) if t0 is None else t0
    done = events[events["state"] == "done"]["time"].sort_values() - t0
    return pd.DataFrame({"time": [0.0, *done.tolist()],
                         "completed": list(range(len(done) + 1))})


def utilization(events: pd.DataFrame, t0: float | None = None) -> pd.DataFrame:
    """Tasks running at once over time: ``time`` (s since ``t0``, by default the first
    event) and ``busy``."""
    import pandas as pd

    t0 = float(events["time"].min()) if t0 is None else t0
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


# ---------------------------------------------------------------- per site, across runs

#: The runs-table columns of a run queued through a site agent: the site's name, and when
#: the run was queued and claimed by the agent (Unix seconds, as strings).
SITE = "tag.site"
QUEUED_AT = "tag.site.queued_at"
CLAIMED_AT = "tag.site.claimed_at"
#: Run statuses counted as failed runs, and as runs not ended yet.
FAILED_STATUSES = ("FAILED", "KILLED")
PENDING_STATUSES = ("SCHEDULED", "RUNNING")


def site_names(runs: pd.DataFrame) -> list[str]:
    """The distinct non-empty ``site`` tags of a runs table, sorted."""
    if SITE not in runs:
        return []
    return sorted({str(v) for v in runs[SITE].dropna() if str(v)})


def with_site(events: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``events`` (with ``run_id``) plus a ``site`` column: the site of each event's run.

    Events of runs without a site tag get NaN.
    """
    site_of = runs.set_index("run_id")[SITE] if SITE in runs else {}
    return events.assign(site=events["run_id"].map(site_of))


def queue_waits(runs: pd.DataFrame) -> pd.Series:
    """Seconds from queued to claimed (``site.claimed_at - site.queued_at``) of each run
    that has both tags, indexed as ``runs``; empty when the tags are absent."""
    import pandas as pd

    if QUEUED_AT not in runs or CLAIMED_AT not in runs:
        return pd.Series(dtype=float)
    queued = pd.to_numeric(runs[QUEUED_AT], errors="coerce")
    claimed = pd.to_numeric(runs[CLAIMED_AT], errors="coerce")
    return (claimed - queued).dropna().astype(float)


def site_summary(runs: pd.DataFrame, events: pd.DataFrame | None) -> dict[str, float]:
    """Runs, tasks, throughput, busy workers and queue wait of one site's runs.

    Parameters
    ----------
    runs : pandas.DataFrame
        The site's rows of a runs table (``status`` and, when present, the ``site.*`` tags).
    events : pandas.DataFrame or None
        The events of those runs concatenated with a ``run_id`` column (None: none).

    Returns
    -------
    dict
        ``runs``, ``finished``, ``failed`` (FAILED or KILLED), ``pending`` (SCHEDULED or
        RUNNING); ``tasks``, ``completed``, ``tasks_failed``; ``span_s`` (first event to
        last); ``tasks_per_min`` (tasks completed) and ``runs_per_min`` (runs finished)
        over the span; ``mean_busy`` and ``peak_busy`` (tasks running at once);
        ``wait_median_s`` and ``wait_p95_s`` (NaN without the queue tags) and ``waits``
        (how many runs have them).
    """
    status = runs["status"].astype(str)
    out = {"runs": float(len(runs)), "finished": float((status == "FINISHED").sum()),
           "failed": float(status.isin(FAILED_STATUSES).sum()),
           "pending": float(status.isin(PENDING_STATUSES).sum())}
    s = summary(events) if events is not None and len(events) else {}
    span = s.get("makespan_s", 0.0)
    out.update(tasks=s.get("tasks", 0.0), completed=s.get("completed", 0.0),
               tasks_failed=s.get("failed", 0.0), span_s=span,
               tasks_per_min=60 * s.get("completed", 0.0) / span if span > 0 else 0.0,
               runs_per_min=60 * out["finished"] / span if span > 0 else 0.0,
               mean_busy=s.get("mean_busy", 0.0), peak_busy=s.get("peak_busy", 0.0))
    waits = queue_waits(runs)
    out.update(waits=float(len(waits)),
               wait_median_s=float(waits.median()) if len(waits) else float("nan"),
               wait_p95_s=float(waits.quantile(0.95)) if len(waits) else float("nan"))
    return out


def site_summaries(runs: pd.DataFrame, events: pd.DataFrame | None,
                   sites: list[str] | None = None) -> pd.DataFrame:
    """:func:`site_summary` of each site, one row per site (index ``site``).

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table with ``run_id``, ``status`` and the ``site`` tag column.
    events : pandas.DataFrame or None
        The events of some of those runs with a ``run_id`` column (None: none).
    sites : list of str, optional
        The sites, in the order of the rows (default: :func:`site_names` of ``runs``).
    """
    import pandas as pd

    sites = site_names(runs) if sites is None else sites
    tagged = events if events is None else with_site(events, runs)
    rows = {}
    for site in sites:
        mine = runs[runs[SITE] == site] if SITE in runs else runs.iloc[0:0]
        ev = None if tagged is None else tagged[tagged["site"] == site].drop(columns="site")
        rows[site] = site_summary(mine, ev)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("site")


def _by(events: pd.DataFrame, by: str, curve: str, t0: float | None) -> pd.DataFrame:
    import pandas as pd

    t0 = float(events["time"].min()) if t0 is None else t0
    end = float(events["time"].max()) - t0
    fn = throughput if curve == "throughput" else utilization
    value = "completed" if curve == "throughput" else "busy"
    parts = []
    for key, group in events.groupby(by, sort=False):
        part = fn(group.drop(columns=by), t0)
        if part["time"].iloc[-1] < end:     # held to the end of all, so lines end together
            part.loc[len(part)] = [end, part[value].iloc[-1]]
        parts.append(part.assign(**{by: key}))
    if not parts:
        return pd.DataFrame(columns=[by, "time", value])
    return pd.concat(parts, ignore_index=True)[[by, "time", value]]


def throughput_by(events: pd.DataFrame, by: str = "site",
                  t0: float | None = None) -> pd.DataFrame:
    """:func:`throughput` of each value of column ``by``, on one clock: columns ``by``,
    ``time`` (s since ``t0``, by default the first event of all) and ``completed``; each
    line is held at its last value until the last event of all."""
    return _by(events, by, "throughput", t0)


def utilization_by(events: pd.DataFrame, by: str = "site",
                   t0: float | None = None) -> pd.DataFrame:
    """:func:`utilization` of each value of column ``by``, on one clock: columns ``by``,
    ``time`` (s since ``t0``, by default the first event of all) and ``busy``; each line
    is held at its last value until the last event of all."""
    return _by(events, by, "utilization", t0)
