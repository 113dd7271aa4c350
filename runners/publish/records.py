"""Published runs: one JSON record per run, ``summary.csv`` of a results branch, and the
records read back from a commit (the format ``bench publish`` writes, ``bench import``
reads).

Format 2 (written now): ``params``, ``tags``, ``status``, times, ``metrics`` (the latest
value of each key, for readers that want one number), ``history`` (every point of every
metric as ``[step, value, timestamp_ms]``, one line per key; a non-finite value as the
string ``"nan"``) and ``artifacts``: every file as ``{path, size, sha256, stored}``, the
stored ones (under the size caps) committed byte for byte at
``artifacts/<experiment>/<run_id>/<path>``.  Format 1 (read still) had the latest metrics
and artifact names only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
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
              b"artifacts/<experiment>/<run_id>/, summary.csv, report/.\n"
#: The record format written; :data:`FORMATS` are the ones read.
FORMAT = 2
FORMATS = (1, 2)
#: What a record of an older format lacks, said by ``bench import``.
LACKS = {1: "latest metric values only (no history) and artifact names only (no files)"}
#: Artifact folders published first when the total cap cannot take every file.
FIRST = ("results", "config", "provenance", "events", "env")
SUMMARY_TAGS = ("machine", "fs")


def redact(records: list[dict[str, Any]], patterns: Sequence[str] = (),
           files: dict[str, bytes] | None = None) -> list[str]:
    """Replace the values of secret-looking tag and param keys by ``[redacted]``, in place.

    Parameters
    ----------
    records : list of dict
        Run records with ``params`` and ``tags`` dicts.
    patterns : sequence of str
        Regular expressions of secret keys, added to :data:`runners.tracking.redact.SECRET_WORDS`
        (searched in keys, ignoring case).
    files : dict, optional
        Artifact bytes by path: the redacted values are replaced in them too, in place.

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
    for path in list(files or ()):
        assert files is not None
        for secret in sorted(secrets, key=len, reverse=True):
            files[path] = files[path].replace(secret.encode(), REDACTED.encode())
    return sorted(hits)


def stamp(ts: Any) -> tuple[str | None, int | None]:
    """An ISO time and milliseconds of a runs-table timestamp (None, None for NaT)."""
    import pandas as pd

    if pd.isna(ts):
        return None, None
    ms = int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    when = datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=ms % 1000 * 1000)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), ms


def pick_artifacts(root: Path, max_file: int, max_total: int
                   ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The artifact entries of a run's files under ``root``, and the bytes of those stored.

    A file is stored when it is at most ``max_file`` bytes and the run's stored files stay
    within ``max_total``; the folders of :data:`FIRST` are served first, then smaller
    files before larger.  Every file gets an entry ``{path, size, sha256, stored}``.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    entries: dict[str, dict[str, Any]] = {}
    for file in files:
        data = file.read_bytes()
        entries[file.relative_to(root).as_posix()] = {
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "stored": False}

    def rank(path: str) -> tuple[int, int, str]:
        top = path.split("/", 1)[0]
        return (FIRST.index(top) if top in FIRST else len(FIRST), entries[path]["size"], path)

    stored: dict[str, bytes] = {}
    total = 0
    for path in sorted(entries, key=rank):
        size = entries[path]["size"]
        if size <= max_file and total + size <= max_total:
            entries[path]["stored"] = True
            stored[path] = (root / path).read_bytes()
            total += size
    return [{"path": p, **e} for p, e in entries.items()], stored


def run_record(row: Mapping[str, Any], artifacts: Sequence[Mapping[str, Any]],
               history: Mapping[str, Sequence[tuple[int, float, int]]]) -> dict[str, Any]:
    """The JSON record of one row of :meth:`runners.tracking.query.StoreReader.runs_table`,
    with its metric ``history`` and artifact entries (see :func:`pick_artifacts`)."""
    import pandas as pd

    def group(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in row.items()
                if k.startswith(prefix) and not pd.isna(v)}

    def number(value: float) -> float | str:
        return value if math.isfinite(value) else repr(value)

    start, start_ms = stamp(row["start_time"])
    end, end_ms = stamp(row["end_time"])
    return {"format": FORMAT, "run_id": row["run_id"], "experiment": str(row["experiment"]),
            "status": row["status"], "start_time": start, "start_time_ms": start_ms,
            "end_time": end, "end_time_ms": end_ms,
            "params": {k: str(v) for k, v in group("param.").items()},
            "metrics": {k: float(v) for k, v in group("metric.").items()},
            "tags": {k: str(v) for k, v in group("tag.").items()},
            "history": {k: [[int(s), number(v), int(t)] for s, v, t in points]
                        for k, points in sorted(history.items())},
            "artifacts": [dict(a) for a in artifacts]}


def dumps(rec: Mapping[str, Any]) -> bytes:
    """A record as JSON text: indented, but each metric's history on one line (a step is
    one number in a diff, and a run of 400 points stays a few kilobytes)."""
    head = json.dumps({k: v for k, v in rec.items() if k != "history"}, indent=2,
                      sort_keys=True)
    if "history" not in rec:
        return (head + "\n").encode()
    lines = [f"    {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
             for k, v in rec["history"].items()]
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    return (head[:-2] + f',\n  "history": {body}\n}}\n').encode()


def history_of(rec: Mapping[str, Any]) -> dict[str, list[tuple[int, float, int]]] | None:
    """A record's metric points as ``(step, value, timestamp)``; None for format 1."""
    if "history" not in rec:
        return None
    return {k: [(int(s), float(v), int(t)) for s, v, t in points]
            for k, points in rec["history"].items()}


def artifact_path(rec: Mapping[str, Any], path: str) -> str:
    """Where a stored artifact of a record is committed on the branch."""
    return f"artifacts/{record_path(rec)[len('runs/'):-len('.json')]}/{path}"


def record_path(rec: Mapping[str, Any]) -> str:
    """Where a record is committed: ``runs/<experiment>/<run_id>.json``."""
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


def _valid(rec: Any) -> bool:
    """Whether a parsed record has the fields and types of its format."""
    ok = (isinstance(rec["run_id"], str) and re.fullmatch(r"[A-Za-z0-9_-]+", rec["run_id"])
          and isinstance(rec["experiment"], str) and rec["status"] in STATUSES
          and all(isinstance(v, str) for g in ("params", "tags") for v in rec[g].values())
          and all(isinstance(v, int | float) for v in rec["metrics"].values())
          and all(isinstance(rec.get(t), int | None) for t in ("start_time_ms", "end_time_ms")))
    if rec["format"] == 1:
        return bool(ok) and all(isinstance(a, str) for a in rec.get("artifacts", []))
    return bool(ok) and all(
        isinstance(s, int) and isinstance(t, int) and isinstance(float(v), float)
        for points in rec["history"].values() for s, v, t in points) and all(
        isinstance(a["path"], str) and not a["path"].startswith("/")
        and ".." not in a["path"].split("/")
        and isinstance(a["size"], int) and isinstance(a["sha256"], str)
        and isinstance(a["stored"], bool) for a in rec["artifacts"])


def read_records(repo: Path, commit: str,
                 tree: Mapping[str, tuple[str, str, str]] | None = None) -> list[dict[str, Any]]:
    """The run records of a results commit (``runs/**/*.json``), checked.

    Raises InputError on a record of a format this version does not know (a newer one), on
    one that is not a record, and on a stored artifact missing from the commit.
    """
    tree = tree if tree is not None else tree_of(repo, commit)
    files = {p: e for p, e in tree.items()
             if p.startswith("runs/") and p.endswith(".json") and e[1] == "blob"}
    records = []
    for path, blob in zip(files, blobs(repo, [e[2] for e in files.values()]), strict=True):
        try:
            rec = json.loads(blob)
            version = rec.get("format", 1)
        except (ValueError, AttributeError):
            rec, version = None, None
        if isinstance(version, int) and version not in FORMATS:
            raise InputError(f"{path} in {commit[:12]} is a run record of format {version}; "
                             f"this bench reads formats {', '.join(map(str, FORMATS))}: "
                             "upgrade hpc-bench-runner to import it")
        try:
            rec["format"] = version
            ok = isinstance(version, int) and _valid(rec)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise InputError(f"{path} in {commit[:12]} is not a run record of bench publish "
                             "(needs format, run_id, experiment, status, params, metrics, "
                             "tags; history and artifacts from format 2)")
        missing = [a["path"] for a in rec["artifacts"] if isinstance(a, dict) and a["stored"]
                   and artifact_path(rec, a["path"]) not in tree]
        if missing:
            raise InputError(f"{path} in {commit[:12]} lists stored artifacts the commit "
                             f"lacks ({', '.join(missing[:3])}); publish the run again")
        records.append(rec)
    return records


def check_artifacts(repo: Path, tree: Mapping[str, tuple[str, str, str]],
                    records: Sequence[Mapping[str, Any]]) -> None:
    """InputError unless every stored artifact's blob matches its record's sha256 (read in
    batches of 200 runs, so a branch is checked before anything is imported)."""
    for i in range(0, len(records), 200):
        wanted = [(rec, a) for rec in records[i:i + 200] for a in rec["artifacts"]
                  if isinstance(a, dict) and a["stored"]]
        found = blobs(repo, [tree[artifact_path(rec, a["path"])][2] for rec, a in wanted])
        for (rec, entry), data in zip(wanted, found, strict=True):
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise InputError(f"artifact {entry['path']} of run {rec['run_id']} does not "
                                 "match its sha256 in the record; publish the run again")
