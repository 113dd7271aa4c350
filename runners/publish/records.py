"""Published runs: one JSON record per run, ``summary.csv`` of a results branch, and the
records read back from a commit (the format ``bench publish`` writes, ``bench import``
reads)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runners.errors import InputError
from runners.publish.git import blobs, tree_of
from runners.tracking.query import STATUSES
from runners.tracking.redact import REDACTED, SCRUB_MIN_LEN, compile_patterns, secret_key

#: The file that marks a results branch as written by ``bench publish``.
MARKER = ".bench-results"
MARKER_TEXT = b"bench-results 1\nRuns published by `bench publish` (hpc-bench-runner); read " \
              b"them back with `bench import`.\nLayout: runs/<experiment>/<run_id>.json, " \
              b"summary.csv, report/.\n"
FORMAT = 1
SUMMARY_TAGS = ("machine", "fs")


def redact(records: list[dict[str, Any]], patterns: Sequence[str] = ()) -> list[str]:
    """Replace the values of secret-looking tag and param keys by ``[redacted]``, in place.

    Parameters
    ----------
    records : list of dict
        Run records with ``params`` and ``tags`` dicts.
    patterns : sequence of str
        Regular expressions of secret keys, added to :data:`runners.tracking.redact.SECRET_WORDS`
        (searched in keys, ignoring case).

    Returns
    -------
    list of str
        The redacted ``tags.KEY``/``params.KEY`` names, sorted.  Redacted values of at least
        :data:`SCRUB_MIN_LEN` characters are also replaced inside every other value.
    """
    regexes = compile_patterns(patterns)
    hits: set[str] = set()
    secrets: set[str] = set()
    for rec in records:
        for group in ("params", "tags"):
            for key, value in rec[group].items():
                if secret_key(key, regexes):
                    hits.add(f"{group}.{key}")
                    if len(value) >= SCRUB_MIN_LEN:
                        secrets.add(value)
                    rec[group][key] = REDACTED
    for rec in records:
        for group in ("params", "tags"):
            for key, value in rec[group].items():
                for secret in sorted(secrets, key=len, reverse=True):
                    value = value.replace(secret, REDACTED)
                rec[group][key] = value
    return sorted(hits)


def stamp(ts: Any) -> tuple[str | None, int | None]:
    """An ISO time and milliseconds of a runs-table timestamp (None, None for NaT)."""
    import pandas as pd

    if pd.isna(ts):
        return None, None
    ms = int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    when = datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=ms % 1000 * 1000)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), ms


def run_record(row: Mapping[str, Any], artifacts: Sequence[str]) -> dict[str, Any]:
    """The JSON record of one row of :meth:`runners.tracking.query.StoreReader.runs_table`."""
    import pandas as pd

    def group(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in row.items()
                if k.startswith(prefix) and not pd.isna(v)}

    start, start_ms = stamp(row["start_time"])
    end, end_ms = stamp(row["end_time"])
    return {"format": FORMAT, "run_id": row["run_id"], "experiment": str(row["experiment"]),
            "status": row["status"], "start_time": start, "start_time_ms": start_ms,
            "end_time": end, "end_time_ms": end_ms,
            "params": {k: str(v) for k, v in group("param.").items()},
            "metrics": {k: float(v) for k, v in group("metric.").items()},
            "tags": {k: str(v) for k, v in group("tag.").items()}, "artifacts": list(artifacts)}


def record_path(rec: Mapping[str, Any]) -> str:
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", rec["experiment"]).strip(".") or "_"
    return f"runs/{folder}/{rec['run_id']}.json"


def summary_csv(old: bytes | None, records: Sequence[Mapping[str, Any]]) -> bytes:
    """``summary.csv``: the rows of an earlier summary updated with these runs, by start time."""
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(old.decode()))} if old else {}
    for rec in records:
        rows[rec["run_id"]] = {
            "run_id": rec["run_id"], "experiment": rec["experiment"], "status": rec["status"],
            "start_time": rec["start_time"] or "",
            **{t: rec["tags"].get(t, "") for t in SUMMARY_TAGS},
            **{k: repr(v) for k, v in rec["metrics"].items() if k.endswith(".median")}}
    fixed = ["run_id", "experiment", "status", "start_time", *SUMMARY_TAGS]
    medians = sorted({k for row in rows.values() for k in row} - set(fixed))
    text = io.StringIO()
    writer = csv.DictWriter(text, [*fixed, *medians], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows.values(), key=lambda r: (r["start_time"], r["run_id"])))
    return text.getvalue().encode()


def read_records(repo: Path, commit: str) -> list[dict[str, Any]]:
    """The run records of a results commit (``runs/**/*.json``), checked."""
    tree = {p: e for p, e in tree_of(repo, commit).items()
            if p.startswith("runs/") and p.endswith(".json") and e[1] == "blob"}
    records = []
    for path, blob in zip(tree, blobs(repo, [e[2] for e in tree.values()]), strict=True):
        try:
            rec = json.loads(blob)
            ok = (isinstance(rec["run_id"], str) and isinstance(rec["experiment"], str)
                  and rec["status"] in STATUSES
                  and all(isinstance(v, str) for g in ("params", "tags") for v in rec[g].values())
                  and all(isinstance(v, int | float) for v in rec["metrics"].values())
                  and all(isinstance(rec.get(t), int | None) for t in ("start_time_ms",
                                                                        "end_time_ms")))
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise InputError(f"{path} in {commit[:12]} is not a run record of bench publish "
                             "(needs run_id, experiment, status, params, metrics, tags)")
        records.append(rec)
    return records
