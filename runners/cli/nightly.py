"""``bench nightly``: update the benchmarked repository, run the suite, judge, report, publish.

The steps, each a plain command a user could type:

1. clone the repository at ``--repo`` into ``<cache>/nightly/<name>`` (or fetch it) and
   check out ``--ref`` (detached, the working tree of that private clone only);
2. run every entry of the suite (``python run.py …``, ``-m`` for sweeps) with
   ``BENCH_TARGET`` set to the checkout and the tags ``target_commit``, ``target_ref``
   and ``nightly_date``;
3. ``bench regress`` over the suite's experiments;
4. ``bench report --output <report dir>``;
5. ``bench publish --repo <results repo>`` when ``--results-repo`` is given.

Exit code: 1 when a regression was found, 3 when some run failed (and nothing
regressed), 2 on bad input, else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

from runners.cli import publish as publish_verb
from runners.cli import regress as regress_verb
from runners.cli import report as report_verb
from runners.cli.options import DEFAULT_ARTIFACTS, DEFAULT_URI, fail, run_verb, whole_option
from runners.cli.suite import git, git_failure, load_suite, private_clone, resolve_commit, run_suite
from runners.config.schema import PROJECT_ROOT
from runners.errors import InputError


def update_checkout(repo: str, ref: str, cache: Path) -> tuple[Path, str]:
    """Clone or fetch ``repo`` into ``<cache>/nightly`` and check out ``ref``; return
    (path, commit)."""
    dest = private_clone(repo, cache, "nightly")
    commit = resolve_commit(dest, ref)
    if not commit:
        raise ValueError(f"ref {ref!r} not found in {repo}")
    git("checkout", "--quiet", "--detach", commit, cwd=dest)
    return dest, commit


def cmd_nightly(args: argparse.Namespace) -> int:
    """Update a repository at a ref, run a suite against it, then regress, report, publish."""
    project = Path(args.project)
    try:
        whole_option("--confirm", args.confirm or None, 1)
        if args.notify:
            from runners.publish.notify import check_target

            for target in args.notify:
                check_target(target, os.environ)
    except InputError as exc:
        return fail(str(exc))
    try:
        entries = load_suite(Path(args.suite))
        target, commit = update_checkout(args.repo, args.ref, Path(args.cache))
    except ValueError as exc:
        return fail(str(exc))
    except subprocess.CalledProcessError as exc:
        return fail(git_failure(exc, args.repo))
    print(f"nightly: {args.repo} at {args.ref} = {commit[:12]} in {target}", flush=True)
    store = [f"tracking.uri={args.tracking_uri}"]
    if args.artifact_root:
        store.append(f"tracking.artifact_root={args.artifact_root}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    tags = {"target_commit": commit, "target_ref": args.ref, "nightly_date": stamp}
    results = run_suite(entries, target, tags, store, project)
    failed = [r.command for r in results if r.code != 0]
    uri = ["--tracking-uri", args.tracking_uri]
    verbs = (regress_verb, report_verb, publish_verb)     # called in this process
    if args.confirm:  # reruns see the checkout as the suite's runs did
        os.environ["BENCH_TARGET"] = str(target)
    regress = run_verb(verbs, ["regress", *uri, *_since(args), *_alerting(args)])
    report: Any = run_verb(verbs, ["report", *uri, "--output", args.report_dir])
    published = 0
    if args.results_repo:
        published = run_verb(verbs, ["publish", *uri, "--repo", args.results_repo,
                           "--report-dir", args.report_dir])
    print(f"nightly: {len(results)} suite entries, {len(failed)} failed; regress exit "
          f"{regress}; report exit {report}; publish exit {published}")
    for cmd in failed:
        print(f"  failed: {cmd}")
    if regress == 1:
        return 1
    return 3 if failed or report or published else 0


def _since(args: argparse.Namespace) -> list[str]:
    return ["--since", args.since] if args.since else []


def _alerting(args: argparse.Namespace) -> list[str]:
    """The ``bench regress`` options for confirmation reruns and notifications."""
    out = ["--confirm", args.confirm] if args.confirm else []
    for target in args.notify or ():
        out += ["--notify", target]
    url = args.report_url or (Path(args.report_dir).resolve() / "index.html").as_uri()
    return [*out, "--report-url", url] if args.notify else out


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench nightly``."""
    p = verbs.add_parser("nightly", help=cmd_nightly.__doc__, description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True, help="the benchmarked git repository (URL or path)")
    p.add_argument("--ref", default="main", help="branch, tag or commit (default: %(default)s)")
    p.add_argument("--suite", default=str(PROJECT_ROOT / "conf" / "nightly" / "example.yaml"),
                   help="YAML suite: experiments: [[run.py args...], ...]")
    p.add_argument("--tracking-uri", default=DEFAULT_URI)
    p.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS)
    p.add_argument("--report-dir", default=str(PROJECT_ROOT / "report"),
                   help="where the results page goes (default: %(default)s)")
    p.add_argument("--results-repo", default="", help="publish to this git repository's "
                   "results branch (default: do not publish)")
    p.add_argument("--since", default="", help="judge only runs since (e.g. 30d)")
    p.add_argument("--confirm", metavar="N", default="",
                   help="rerun each suspected regression N times before calling it one "
                        "(see bench regress --confirm)")
    p.add_argument("--notify", action="append", metavar="TARGET",
                   help="send each new regression once to a webhook URL or mailto:ADDR "
                        "(see bench regress --notify); repeatable")
    p.add_argument("--report-url", default="",
                   help="link to the published report in notifications (default: the "
                        "report directory as a file:// URL)")
    p.add_argument("--cache", default=str(PROJECT_ROOT / ".cache"),
                   help="where the repository is cloned (default: %(default)s)")
    p.add_argument("--project", default=str(PROJECT_ROOT), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_nightly)
