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
import json
import os
import re
import sys
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
    MARKER,
    MARKER_TEXT,
    read_records,
    record_path,
    redact,
    run_record,
    summary_csv,
)
from runners.tracking.query import StoreReader
from runners.tracking.replay import Replayer


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
    reader = open_store(args.tracking_uri)
    frame = select_runs(reader, args.experiment or [], args.where or [], args.run_id or [])
    report = _tree_files(args.report_dir)
    records = [run_record(row, reader.artifact_paths(str(row["run_id"])))
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
    files = {record_path(r): ("100644", (json.dumps(r, indent=2, sort_keys=True) + "\n").encode())
             for r in records}
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
    _own(repo, branch, commit, tree_of(repo, commit))
    records = read_records(repo, commit)
    reader, replayer = StoreReader(args.tracking_uri), Replayer(args.tracking_uri)
    known: dict[str, set[str]] = {}
    done = 0
    for rec in records:
        exp = rec["experiment"]
        if exp not in known:
            known[exp] = reader.known_run_ids(exp)
        if rec["run_id"] in known[exp]:
            continue
        tags = {**rec["tags"], "import.source_run_id": rec["run_id"],
                "import.source_commit": commit, "import.source_branch": branch}
        replayer.import_run(exp, rec["status"], rec.get("start_time_ms"), rec.get("end_time_ms"),
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
