"""``bench publish`` and ``bench import``: runs to and from a results branch of a git repository.

``publish`` commits one JSON record per run (``runs/<experiment>/<run_id>.json``), a
``summary.csv`` of all runs on the branch and optionally a report directory (``report/``)
to a branch, with git plumbing only: blobs by ``hash-object``, the tree in a temporary index
(``GIT_INDEX_FILE``), ``commit-tree`` and ``update-ref`` against the old tip.  The working
tree, index and HEAD of the repository are never touched.  A branch holds the file
``.bench-results`` at its root; a branch without it is someone else's and is refused.
``import`` recreates the runs of such a branch in a store, read with ``ls-tree``/``cat-file``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runners.analysis.table import InputError, filter_where, parse_where, resolve_column
from runners.gitplumb import (
    GitError,
    blobs,
    commit_tree,
    git,
    git_out,
    hash_files,
    open_repo,
    tip,
    tree_of,
)
from runners.redact import REDACTED, SCRUB_MIN_LEN, compile_patterns, secret_key

MARKER = ".bench-results"
MARKER_TEXT = b"bench-results 1\nRuns published by `bench publish` (hpc-bench-runner); read " \
              b"them back with `bench import`.\nLayout: runs/<experiment>/<run_id>.json, " \
              b"summary.csv, report/.\n"
FORMAT = 1
STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")
SUMMARY_TAGS = ("machine", "fs")


def _run(work: Callable[[argparse.Namespace], str], args: argparse.Namespace) -> int:
    """Print what ``work`` returns (0), or one ``error:`` line: 2 for bad input, 1 for git."""
    try:
        print(work(args))
    except (InputError, GitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    return 0


def _own(repo: Path, branch: str, commit: str, tree: Mapping[str, Any]) -> None:
    if MARKER not in tree:
        raise InputError(f"branch {branch} ({commit[:12]}) in {repo} has no {MARKER} file, so it "
                         "was not written by bench publish; choose another --branch")


def redact(records: list[dict[str, Any]], patterns: Sequence[str] = ()) -> list[str]:
    """Replace the values of secret-looking tag and param keys by ``[redacted]``, in place.

    Parameters
    ----------
    records : list of dict
        Run records with ``params`` and ``tags`` dicts.
    patterns : sequence of str
        Regular expressions of secret keys, added to :data:`runners.redact.SECRET_WORDS`
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


def _stamp(ts: Any) -> tuple[str | None, int | None]:
    """An ISO time and milliseconds of a runs-table timestamp (None, None for NaT)."""
    import pandas as pd

    if pd.isna(ts):
        return None, None
    ms = int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    when = datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=ms % 1000 * 1000)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), ms


def run_record(row: Mapping[str, Any], artifacts: Sequence[str]) -> dict[str, Any]:
    """The JSON record of one row of :meth:`runners.tracking.Tracker.runs_table`."""
    import pandas as pd

    def group(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in row.items()
                if k.startswith(prefix) and not pd.isna(v)}

    start, start_ms = _stamp(row["start_time"])
    end, end_ms = _stamp(row["end_time"])
    return {"format": FORMAT, "run_id": row["run_id"], "experiment": str(row["experiment"]),
            "status": row["status"], "start_time": start, "start_time_ms": start_ms,
            "end_time": end, "end_time_ms": end_ms,
            "params": {k: str(v) for k, v in group("param.").items()},
            "metrics": {k: float(v) for k, v in group("metric.").items()},
            "tags": {k: str(v) for k, v in group("tag.").items()}, "artifacts": list(artifacts)}


def _record_path(rec: Mapping[str, Any]) -> str:
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


def select_runs(tracker: Any, experiments: Sequence[str], where: Sequence[str],
                run_ids: Sequence[str]) -> Any:
    """Rows of the runs table matching every ``--where`` and, if given, the run id prefixes."""
    pairs = parse_where(where)
    try:
        frame = tracker.runs_table(list(experiments) or None)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    wanted: dict[str, list[str]] = {}
    for key, value in pairs:
        if not frame.empty:
            wanted.setdefault(resolve_column(frame, key, "--where"), []).append(value)
    frame = filter_where(frame, wanted)
    if run_ids:
        keep = []
        for rid in run_ids:
            hits = [i for i, full in zip(frame.index, frame["run_id"], strict=True)
                    if str(full).startswith(rid)]
            if len(hits) != 1:
                what = "no selected run" if not hits else f"{len(hits)} runs"
                raise InputError(f"--run-id {rid!r} matches {what}; give a longer prefix or a "
                                 "run id from `bench runs` within --experiment/--where")
            keep += hits
        frame = frame.loc[list(dict.fromkeys(keep))]
    if frame.empty:
        told = [f"experiment={','.join(experiments) or 'all'}", *where]
        raise InputError(f"no runs selected ({', '.join(told)}); check --experiment and "
                         "--where with `bench runs`")
    return frame


def _tree_files(report_dir: str | None) -> dict[str, tuple[str, bytes]]:
    if report_dir is None:
        return {}
    root = Path(report_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise InputError(f"--report-dir {report_dir} is not a directory with files; give the "
                         "directory of a report (e.g. the output of `bench compare`)")
    return {f"report/{p.relative_to(root).as_posix()}":
            ("100755" if os.access(p, os.X_OK) else "100644", p.read_bytes()) for p in files}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _publish(args: argparse.Namespace) -> str:
    """The work of ``bench publish``; returns the line to print."""
    from runners.tracking import Tracker, local_store_paths

    repo = open_repo(args.repo)
    for pattern in args.redact or ():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"--redact {pattern!r} is not a regular expression ({exc}); "
                             "e.g. --redact 'ssh|cookie'") from None
    db = local_store_paths(args.tracking_uri)
    if db is not None and not db.is_file():
        raise InputError(f"no store at {db}; run `python run.py` first or pass --tracking-uri")
    tracker = Tracker(args.tracking_uri)
    frame = select_runs(tracker, args.experiment or [], args.where or [], args.run_id or [])
    report = _tree_files(args.report_dir)
    records = [run_record(row, tracker.artifact_paths(str(row["run_id"])))
               for row in frame.to_dict("records")]
    redact(records, args.redact or ())
    machines = sorted({r["tags"].get("machine", "") for r in records})
    branch = args.branch or (f"results/{machines[0]}" if len(machines) == 1 and machines[0]
                             else "results/all")
    ref = f"refs/heads/{branch}"
    if branch.startswith("-") or git(repo, "check-ref-format", ref, check=False).returncode:
        raise InputError(f"branch name {branch!r} is not valid in git; give --branch like "
                         "results/polaris")
    worktrees = git_out(repo, "worktree", "list", "--porcelain").splitlines()
    if f"branch {ref}" in worktrees:
        raise InputError(f"branch {branch} is checked out in a work tree of {repo}; publishing "
                         "would change it under your files; check out another branch first")
    old = tip(repo, ref)
    entries: dict[str, tuple[str, ...]] = {}
    if old is not None:
        entries = dict(tree_of(repo, old))
        _own(repo, branch, old, entries)
    files = {_record_path(r): ("100644", (json.dumps(r, indent=2, sort_keys=True) + "\n").encode())
             for r in records}
    summary = blobs(repo, [entries["summary.csv"][2]])[0] if "summary.csv" in entries else None
    files["summary.csv"] = ("100644", summary_csv(summary, records))
    files[MARKER] = ("100644", MARKER_TEXT)
    files.update(report)
    new = hash_files(repo, files)
    added = [r for r in records if _record_path(r) not in entries]
    changed = [r for r in records if entries.get(_record_path(r), new[_record_path(r)]) !=
               new[_record_path(r)]]
    old_report = {p: e for p, e in entries.items() if p.startswith("report/")}
    if report:
        entries = {p: e for p, e in entries.items() if p not in old_report}
    exps = ", ".join(sorted({r["experiment"] for r in records}))
    where = f"{exps} on {', '.join(m for m in machines if m)}" if any(machines) else exps
    news = ", report updated" if report and old_report != {p: new[p] for p in report} else ""
    subject = (f"bench publish: {_plural(len(added), 'run')} added, {len(changed)} updated"
               f"{news} ({where})")
    body = [f"{kind} {r['run_id']} {r['experiment']} {r['status']} {r['start_time']}"
            for kind, group in (("added", added), ("updated", changed)) for r in group]
    message = "\n\n".join(filter(None, [args.message, subject, "\n".join(body)])) + "\n"
    commit = commit_tree(repo, ref, old, {**entries, **new}, message)
    if commit is None:
        return (f"nothing new to publish: {branch} ({(old or '')[:12]}) already holds these "
                f"{_plural(len(records), 'run')}")
    return f"{subject.removeprefix('bench publish: ')} -> {branch} {commit[:12]} in {repo}"


def cmd_publish(args: argparse.Namespace) -> int:
    """Commit runs to a results branch of a git repository, without touching its work tree.

    One JSON file per run (runs/EXPERIMENT/RUN_ID.json: params, latest metrics, tags, status,
    times, artifact names), summary.csv and the files of --report-dir (under report/) are
    merged into the branch tip (default results/MACHINE when the runs share a machine tag,
    else results/all) with git plumbing; HEAD, the index and the work tree stay as they are.
    Values of secret-looking keys (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL) are redacted.
    Publishing the same runs again commits nothing.
    """
    return _run(_publish, args)


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


def _import(args: argparse.Namespace) -> str:
    """The work of ``bench import``; returns the line to print."""
    from runners.tracking import Tracker

    repo = open_repo(args.repo)
    branch = args.branch
    if branch is None:
        heads = git_out(repo, "for-each-ref", "--format=%(refname:short)",
                     "refs/heads/results/").split()
        if len(heads) != 1:
            raise InputError(f"{repo} has {len(heads)} results/* branches "
                             f"({', '.join(heads) or 'none'}); choose one with --branch")
        branch = heads[0]
    commit = None if branch.startswith("-") else (tip(repo, f"refs/heads/{branch}")
                                                  or tip(repo, branch))
    if commit is None:
        raise InputError(f"no branch {branch!r} in {repo}; give --branch results/MACHINE "
                         "(or origin/results/MACHINE after a fetch)")
    _own(repo, branch, commit, tree_of(repo, commit))
    records = read_records(repo, commit)
    tracker = Tracker(args.tracking_uri)
    known: dict[str, set[str]] = {}
    done = 0
    for rec in records:
        exp = rec["experiment"]
        if exp not in known:
            known[exp] = tracker.known_run_ids(exp)
        if rec["run_id"] in known[exp]:
            continue
        tags = {**rec["tags"], "import.source_run_id": rec["run_id"],
                "import.source_commit": commit, "import.source_branch": branch}
        tracker.import_run(exp, rec["status"], rec.get("start_time_ms"), rec.get("end_time_ms"),
                           rec["params"], rec["metrics"], tags)
        known[exp].add(rec["run_id"])
        done += 1
    return (f"{done} imported, {len(records) - done} already present "
            f"(from {branch} {commit[:12]} into {args.tracking_uri})")


def cmd_import(args: argparse.Namespace) -> int:
    """Recreate the runs of a results branch (from bench publish) in a store.

    Reads runs/**/*.json of the branch with git ls-tree and cat-file (no checkout) and
    creates each run with its experiment, params, latest metrics, tags, status and times;
    the original run id is kept as tag import.source_run_id. Runs already imported (or
    already in the store) are skipped, so importing again adds nothing.
    """
    return _run(_import, args)


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register the ``publish`` and ``import`` verbs on a ``bench`` sub-parser action.

    Parameters
    ----------
    verbs : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.
    """
    from runners.cli import DEFAULT_URI  # only when the parser is built

    for name, func in (("publish", cmd_publish), ("import", cmd_import)):
        doc = func.__doc__ or ""
        p = verbs.add_parser(name, help=doc.splitlines()[0], description=doc)
        p.add_argument("--repo", required=True, metavar="PATH",
                       help="the git repository (work tree or bare) holding the branch")
        p.add_argument("--tracking-uri", default=DEFAULT_URI,
                       help="MLflow tracking URI (default: %(default)s)")
        p.set_defaults(func=func)
        if name == "import":
            p.add_argument("--branch", help="branch, remote branch or commit to read "
                                            "(default: the only results/* branch)")
            continue
        p.add_argument("--branch", help="branch to commit to (default: results/MACHINE when "
                                        "all runs share a machine tag, else results/all)")
        p.add_argument("--experiment", action="extend", nargs="+", metavar="NAME",
                       help="experiments to publish (default: all)")
        p.add_argument("--where", action="append", metavar="KEY=VALUE",
                       help="only runs whose tag/param KEY (or experiment, status) is VALUE; "
                            "repeat a key for any of several values")
        p.add_argument("--run-id", action="extend", nargs="+", metavar="ID",
                       help="only these runs (ids or unique prefixes)")
        p.add_argument("--report-dir", metavar="DIR",
                       help="also commit this directory's files under report/ (replacing the "
                            "branch's report/)")
        p.add_argument("--message", metavar="TEXT", help="first paragraph of the commit message")
        p.add_argument("--redact", action="append", metavar="REGEX",
                       help="also redact tags/params whose key matches REGEX (ignoring case)")
