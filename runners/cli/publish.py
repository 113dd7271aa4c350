"""``bench publish`` and ``bench import``: runs to and from a results branch of a git repository.

``publish`` commits one JSON record per run (``runs/<experiment>/<run_id>.json``), a
``summary.csv`` of all runs on the branch and optionally a report directory (``report/``)
to a branch, with git plumbing only: blobs by ``hash-object``, the tree in a temporary index
(``GIT_INDEX_FILE``), ``commit-tree`` and ``update-ref`` against the old tip.  The working
tree, index and HEAD of the repository are never touched.  A branch holds the file
``.bench-results`` at its root; a branch without it is someone else's and is refused.
``import`` recreates the runs of such a branch in a store, read with ``ls-tree``/``cat-file``:
params, tags, status, times, every metric point with its step and timestamp, and the
artifact files that were published (the record format is in :mod:`runners.publish.records`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runners.analysis.table import filter_where, parse_where, resolve_column
from runners.cli.options import DEFAULT_URI, open_store
from runners.errors import InputError
from runners.publish.git import (
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
from runners.publish.records import (
    LACKS,
    MARKER,
    MARKER_TEXT,
    artifact_path,
    check_artifacts,
    dumps,
    history_of,
    pick_artifacts,
    read_records,
    record_path,
    redact,
    run_record,
    summary_csv,
)
from runners.tracking.history import artifact_uris, download_run_artifacts, metric_histories
from runners.tracking.query import StoreReader
from runners.tracking.replay import Replayer
from runners.tracking.store import local_store_paths

#: Default caps of the artifact bytes published: per file, and per run.
MAX_FILE = "1MiB"
MAX_RUN = "16MiB"
UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
         "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


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


def select_runs(reader: StoreReader, experiments: Sequence[str], where: Sequence[str],
                run_ids: Sequence[str]) -> Any:
    """Rows of the runs table matching every ``--where`` and, if given, the run id prefixes."""
    pairs = parse_where(where)
    try:
        frame = reader.runs_table(list(experiments) or None)
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


def parse_size(text: str, option: str) -> int:
    """Bytes of a size like ``1MiB``, ``500k`` or ``4096`` (units are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match[2].lower() not in UNITS:
        raise InputError(f"{option} {text!r} is not a size; give bytes or a number with "
                         "KiB, MiB or GiB, e.g. {option} 1MiB".replace("{option}", option))
    return int(float(match[1]) * UNITS[match[2].lower()])


def _records(reader: StoreReader, uri: str, frame: Any, max_file: int, max_run: int,
             patterns: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The records of the selected runs (redacted) and the artifact bytes to commit, by
    their path on the branch."""
    ids = [str(r) for r in frame["run_id"]]
    histories, roots = metric_histories(uri, ids, reader.client), artifact_uris(uri, ids)
    records: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for row in frame.to_dict("records"):
        run_id = str(row["run_id"])
        with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
            root = download_run_artifacts(reader.client, run_id, Path(tmp),
                                          roots.get(run_id, ""))
            entries, stored = pick_artifacts(root, max_file, max_run)
        rec = run_record(row, entries, histories[run_id])
        records.append(rec)
        files.update({artifact_path(rec, p): b for p, b in stored.items()})
    redact(records, patterns, files)
    for rec in records:     # a redacted file is published as redacted: its size and digest
        for entry in rec["artifacts"]:
            data = files.get(artifact_path(rec, entry["path"])) if entry["stored"] else None
            if data is not None and hashlib.sha256(data).hexdigest() != entry["sha256"]:
                entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                             redacted=True)
    return records, files


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _publish(args: argparse.Namespace) -> str:
    """The work of ``bench publish``; returns the line to print."""
    repo = open_repo(args.repo)
    for pattern in args.redact or ():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"--redact {pattern!r} is not a regular expression ({exc}); "
                             "e.g. --redact 'ssh|cookie'") from None
    max_file = parse_size(args.max_artifact_size, "--max-artifact-size")
    max_run = parse_size(args.max_run_artifacts, "--max-run-artifacts")
    reader = open_store(args.tracking_uri)
    frame = select_runs(reader, args.experiment or [], args.where or [], args.run_id or [])
    report = _tree_files(args.report_dir)
    records, artifacts = _records(reader, args.tracking_uri, frame, max_file, max_run,
                                  args.redact or ())
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
    files = {record_path(r): ("100644", dumps(r)) for r in records}
    files.update({p: ("100644", b) for p, b in artifacts.items()})
    summary = blobs(repo, [entries["summary.csv"][2]])[0] if "summary.csv" in entries else None
    files["summary.csv"] = ("100644", summary_csv(summary, records))
    files[MARKER] = ("100644", MARKER_TEXT)
    files.update(report)
    new = hash_files(repo, files)
    added = [r for r in records if record_path(r) not in entries]
    changed = [r for r in records if entries.get(record_path(r), new[record_path(r)]) !=
               new[record_path(r)]]
    old_report = {p: e for p, e in entries.items() if p.startswith("report/")}
    if report:
        entries = {p: e for p, e in entries.items() if p not in old_report}
    stale = tuple(artifact_path(r, "") for r in records)   # a republished run's old files
    entries = {p: e for p, e in entries.items() if not p.startswith(stale)}
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
    big = sum(not a["stored"] for r in records for a in r["artifacts"])
    note = (f"; {_plural(big, 'artifact')} over --max-artifact-size/--max-run-artifacts "
            "published by name, size and sha256 only") if big else ""
    return f"{subject.removeprefix('bench publish: ')} -> {branch} {commit[:12]} in {repo}{note}"


def cmd_publish(args: argparse.Namespace) -> int:
    """Commit runs to a results branch of a git repository, without touching its work tree.

    One JSON file per run (runs/EXPERIMENT/RUN_ID.json, format 2: params, tags, status,
    times, every metric point with its step and timestamp, and each artifact file's path,
    size and sha256), the artifact files within the size caps byte for byte (under
    artifacts/EXPERIMENT/RUN_ID/; results, config, provenance and events first), summary.csv
    and the files of --report-dir (under report/) are
    merged into the branch tip (default results/MACHINE when the runs share a machine tag,
    else results/all) with git plumbing; HEAD, the index and the work tree stay as they are.
    Values of secret-looking keys (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL) are redacted.
    Publishing the same runs again commits nothing.
    """
    return _run(_publish, args)


def _import(args: argparse.Namespace) -> str:
    """The work of ``bench import``; returns the line to print."""
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
    tree = tree_of(repo, commit)
    _own(repo, branch, commit, tree)
    records = read_records(repo, commit, tree)
    check_artifacts(repo, tree, records)
    db = local_store_paths(args.tracking_uri)
    root = args.artifact_root if args.artifact_root is not None else (
        str(db.parent / "artifacts") if db is not None else "")
    reader, replayer = StoreReader(args.tracking_uri), Replayer(args.tracking_uri, root)
    known: dict[str, set[str]] = {}
    done = 0
    old: dict[int, int] = {}
    omitted = 0
    for rec in records:
        exp = rec["experiment"]
        if exp not in known:
            known[exp] = reader.known_run_ids(exp)
        if rec["run_id"] in known[exp]:
            continue
        tags = {**rec["tags"], "import.source_run_id": rec["run_id"],
                "import.source_commit": commit, "import.source_branch": branch,
                "import.source_format": str(rec["format"])}
        if rec["format"] in LACKS:
            old[rec["format"]] = old.get(rec["format"], 0) + 1
        left = [a for a in rec["artifacts"] if isinstance(a, dict) and not a["stored"]]
        if left:
            omitted += len(left)
            tags["import.artifacts_omitted"] = (
                f"{_plural(len(left), 'file')} over the size caps, published by path, size "
                f"and sha256 only: {', '.join(a['path'] for a in left)}")
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            _restore_files(repo, tree, rec, Path(tmp))
            replayer.import_run(exp, rec["status"], rec.get("start_time_ms"),
                                rec.get("end_time_ms"), rec["params"], rec["metrics"], tags,
                                history=history_of(rec), artifacts=Path(tmp))
        known[exp].add(rec["run_id"])
        done += 1
    notes = [f"{_plural(n, 'record')} of format {f} ({LACKS[f]}: imported as such)"
             for f, n in sorted(old.items())]
    if omitted:
        notes.append(f"{_plural(omitted, 'artifact')} over the size caps published by name, "
                     "size and sha256 only (tag import.artifacts_omitted)")
    return (f"{done} imported, {len(records) - done} already present "
            f"(from {branch} {commit[:12]} into {args.tracking_uri})"
            + "".join(f"; {n}" for n in notes))


def _restore_files(repo: Path, tree: Mapping[str, tuple[str, str, str]],
                   rec: Mapping[str, Any], dst: Path) -> None:
    """Write a record's stored artifacts under ``dst`` (checked by :func:`check_artifacts`)."""
    stored = [a for a in rec["artifacts"] if isinstance(a, dict) and a["stored"]]
    for entry, data in zip(stored, blobs(repo, [tree[artifact_path(rec, a["path"])][2]
                                               for a in stored]), strict=True):
        path = dst / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def cmd_import(args: argparse.Namespace) -> int:
    """Recreate the runs of a results branch (from bench publish) in a store.

    Reads runs/**/*.json of the branch with git ls-tree and cat-file (no checkout) and
    creates each run with its experiment, params, tags, status and times, every metric
    point with its original step and timestamp, and the published artifact files (checked
    against their sha256). Provenance tags: import.source_run_id (the original run id),
    import.source_commit, import.source_branch, import.source_format, and
    import.artifacts_omitted when files over the size caps were published by digest only.
    Records of format 1 (latest metric values, artifact names) are imported as they are,
    and the output says so. Runs already imported (or already in the store) are skipped, so
    importing again adds nothing.
    """
    return _run(_import, args)


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench publish`` and ``bench import``."""

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
            p.add_argument("--artifact-root", metavar="DIR",
                           help="where new experiments keep their artifacts (default: "
                                "artifacts/ beside a SQLite store's file; a server's own)")
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
        p.add_argument("--max-artifact-size", default=MAX_FILE, metavar="SIZE",
                       help="publish artifact files up to this size byte for byte; larger ones "
                            "by path, size and sha256 (default: %(default)s)")
        p.add_argument("--max-run-artifacts", default=MAX_RUN, metavar="SIZE",
                       help="at most this many artifact bytes per run (default: %(default)s)")
        p.add_argument("--redact", action="append", metavar="REGEX",
                       help="also redact tags/params whose key matches REGEX (ignoring case)")
