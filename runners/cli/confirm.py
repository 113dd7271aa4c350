"""``bench regress --confirm N``: rerun each suspected regression before calling it one.

A suspected regression's newest run is rerun ``N`` times through the normal run path,
``python run.py`` with the overrides that run was composed from (its ``config/overrides.yaml``
artifact), on the same machine and filesystem, into the same store, tagged
``confirm.of=<run id>``.  The reruns are ordinary runs: they join the series and later
verdicts.  A rerun whose ``config.hash`` differs (the benchmark's YAML changed since) does
not count.  :func:`runners.analysis.reference.agree` decides whether the reruns agree.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from glob import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runners.analysis.reference import agree
from runners.config.schema import PROJECT_ROOT
from runners.tracking.query import StoreReader

if TYPE_CHECKING:
    import pandas as pd

CONFIRM_TAG = "confirm.of"
#: Overrides that are replaced on a rerun (where it is recorded and what it is tagged).
REPLACED = ("tracking.uri=", f"+tags={{{CONFIRM_TAG}:")


def overrides_of(reader: StoreReader, run_id: str) -> list[str] | None:
    """The Hydra overrides a run was composed from; None when the run did not keep them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = reader.download_artifact(run_id, "config/overrides.yaml", tmp)
        if path is None:
            return None
        items = yaml.safe_load(Path(path).read_text()) or []
    return [str(item) for item in items]


def rerun(overrides: list[str], run_id: str, uri: str, count: int) -> list[int]:
    """Run ``python run.py`` ``count`` times with ``overrides``; the exit codes."""
    kept = [o for o in overrides if not o.startswith(REPLACED)]
    argv = [sys.executable, str(PROJECT_ROOT / "run.py"), *kept, f"tracking.uri={uri}",
            f"+tags={{{CONFIRM_TAG}:{run_id}}}"]   # merged into the run's other tags
    codes = []
    for i in range(count):
        print(f"confirm: rerun {i + 1}/{count} of run {run_id}: python run.py "
              f"{' '.join(kept)}", file=sys.stderr, flush=True)
        codes.append(subprocess.run(argv, stdout=subprocess.DEVNULL, check=False).returncode)
    return codes


def confirm(result: pd.DataFrame, long: pd.DataFrame, reader: StoreReader, uri: str,
            count: int, alpha: float) -> pd.DataFrame:
    """Rerun every regression of ``result`` ``count`` times and keep those that agree.

    Parameters
    ----------
    result : pandas.DataFrame
        Verdict rows (``regress_frame`` or ``reference_frame`` columns).
    long : pandas.DataFrame
        The series the verdicts were made from (``series_frame`` rows).
    reader, uri : StoreReader, str
        The store (reruns are recorded there too).
    count : int
        Reruns per suspected regression.
    alpha : float
        Significance level of :func:`agree`.

    Returns
    -------
    pandas.DataFrame
        ``result`` with a ``confirmation`` column; a regression the reruns refute gets
        status ``refuted``.
    """
    out = result.copy()
    out["confirmation"] = ""
    keys = ["experiment", "metric", "machine", "fs", "config_hash"]
    for i, row in out[out["status"] == "regression"].iterrows():
        suspect = str(row["newest_run_id"])
        overrides = overrides_of(reader, suspect)
        if overrides is None:
            out.at[i, "confirmation"] = f"unconfirmed: run {suspect} kept no config/overrides.yaml"
            continue
        codes = rerun(overrides, suspect, uri, count)
        reruns = _reruns(reader, str(row["experiment"]), suspect, str(row["metric"]),
                         str(row["config_hash"]))
        series = long[(long[keys] == row[keys].to_numpy()).all(axis=1)]
        before = series[series["run_id"] == row["run_id_before"]].index
        reference = series.loc[: before[0], "value"] if len(before) else series["value"]
        ok, text = agree(reference.to_numpy()[-50:], reruns, str(row["direction"]),
                         float(row["effect"]), alpha)
        failed = sum(1 for c in codes if c != 0)
        text += f"; {failed} rerun(s) failed" if failed else ""
        if not reruns:
            out.at[i, "confirmation"] = f"unconfirmed: {text}"
        elif ok:
            out.at[i, "confirmation"] = f"confirmed by {text}"
        else:
            out.at[i, "status"] = "refuted"
            out.at[i, "confirmation"] = f"refuted by {text}"
            out.at[i, "reason"] = f"{row['reason']}; refuted by {text}"
    return out


def _reruns(reader: StoreReader, experiment: str, run_id: str, metric: str,
            config_hash: str) -> list[float]:
    """The metric of the FINISHED reruns of ``run_id`` with the same ``config.hash``."""
    column, tag = f"metric.{metric}", f"tag.{CONFIRM_TAG}"
    frame = reader.runs_table([experiment], status="FINISHED",   # these columns only
                              columns=[escape(c) for c in (column, tag, "tag.config.hash")])
    if tag not in frame.columns or column not in frame.columns:
        return []
    mine = frame[(frame[tag] == run_id) & (frame["tag.config.hash"] == config_hash)]
    values: Any = mine[column].dropna()
    return [float(v) for v in values]
