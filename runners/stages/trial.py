"""One benchmark trial: launch its commands in turn, measure each with psutil, parse what
they print, and cap their logs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runners.stages.base import StageError, StageResult, check_exit, log_paths
from runners.stages.measure import kill_marked, run_measured, truncate_log
from runners.stages.output import Output, SanityError
from runners.stages.results import ResultParseError

#: Marks a trial's processes (by its log path), so a retried trial can stop what a lost
#: worker's attempt left running.
TRIAL_MARKER = "BENCH_TRIAL"


@dataclass(frozen=True)
class TrialCommand:
    """One command of a trial and how its output is read.

    ``{env}`` in an argument is replaced by the environment's directory on the worker.
    """

    argv: tuple[str, ...]
    output: Output = Output()
    name: str = ""


def run_trial(after: Any, commands: list[TrialCommand], label: str, log_dir: str,
              timeout_s: float = 600.0) -> StageResult:
    """Run one benchmark trial: launch each command in turn, measure it, read its output.

    Parameters
    ----------
    after : StageResult
        The previous trial's result (or the warmup's): orders the trials and names the
        environment.
    commands : list of TrialCommand
        The commands of one trial (e.g. one per OSU test); never run through a shell.
    label : str
        Names the trial's logs, e.g. ``trial-0`` or ``warmup-0``.
    log_dir : str
        Where the logs go.
    timeout_s : float
        Kill a command's process tree after this long.

    Returns
    -------
    StageResult
        ``data["results"]``: the parsed results as dicts; ``data["measured"]``: the
        psutil measurement (wall and CPU summed, peak RSS the maximum over the commands).
        When a log was longer than :data:`runners.stages.measure.LOG_LIMIT`, it is cut to
        its start and end after parsing (see :func:`runners.stages.measure.truncate_log`):
        the metric ``bench.log_truncated_bytes`` gives the bytes cut and
        ``data["log_truncated"]`` each cut log's original size and bytes cut.

    Raises
    ------
    StageError
        ``timeout``, ``error`` (non-zero exit), ``parse`` (bad or missing results) or
        ``sanity`` (a sanity pattern failed), with the logs.

    Notes
    -----
    The stdout is read as a stream (:meth:`runners.stages.output.Output.read`), so a
    result anywhere in an output of any size or encoding is found with bounded memory.
    """
    env_dir = str(after.data.get("env_dir", ""))
    results: list[dict[str, Any]] = []
    logs: list[str] = []
    total: dict[str, Any] = {}
    truncated: dict[str, dict[str, int]] = {}
    for i, command in enumerate(commands):
        argv = [a.replace("{env}", env_dir) for a in command.argv]
        name = label if len(commands) == 1 else f"{label}.{command.name or i}"
        out, err = log_paths(log_dir, name)
        logs += [str(out), str(err)]
        if out.exists():    # an earlier attempt (its worker was lost): stop what it left
            kill_marked(TRIAL_MARKER, str(out))
        m = run_measured(argv, out, err, timeout_s, env={**os.environ, TRIAL_MARKER: str(out)})
        try:
            check_exit(m, "bench", f"{name} ({Path(argv[0]).name})")
            try:
                results += [asdict(r) for r in command.output.read(out)]
            except ResultParseError as exc:
                raise StageError("bench", "parse", f"{name}: {exc}", logs) from None
            except SanityError as exc:
                raise StageError("bench", "sanity", f"{name}: {exc}", logs) from None
        finally:    # after parsing (no result is lost), also when the command failed
            truncated.update(cap_logs([out, err]))
        one = m.as_dict()
        if not total:
            total = one
        else:
            for key in ("wall_s", "cpu_user_s", "cpu_system_s"):
                total[key] += one[key]
            total["peak_rss_mb"] = max(total["peak_rss_mb"], one["peak_rss_mb"])
            total["host_after"] = one["host_after"]
    metrics = {k: float(total[k]) for k in ("wall_s", "peak_rss_mb", "cpu_user_s",
                                            "cpu_system_s")}
    data: dict[str, Any] = {"results": results, "measured": total, "env_dir": env_dir}
    if truncated:
        metrics["bench.log_truncated_bytes"] = float(sum(t["cut"] for t in truncated.values()))
        data["log_truncated"] = truncated
    return StageResult("bench", total["wall_s"], metrics, {}, logs, data)


def cap_logs(paths: list[Path]) -> dict[str, dict[str, int]]:
    """Cap each log at :data:`runners.stages.measure.LOG_LIMIT` bytes (start and end kept).

    Parameters
    ----------
    paths : list of Path
        The logs of one command.

    Returns
    -------
    dict
        ``{path: {"size": original bytes, "cut": bytes cut}}`` for each log that was cut.
        A log that cannot be cut (e.g. the disk is full) is kept whole.
    """
    out: dict[str, dict[str, int]] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            size = path.stat().st_size
            cut = truncate_log(path)
        except OSError:
            continue
        if cut:
            out[str(path)] = {"size": size, "cut": cut}
    return out
