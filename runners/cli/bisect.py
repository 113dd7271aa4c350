"""``bench bisect``: find the commit that made a benchmark slower, as ``git bisect`` and
``asv find`` do.

1. clone or fetch ``--repo`` into ``<cache>/bisect/<name>`` (a clone of its own, so a
   nightly checkout is never moved);
2. run the suite (each entry a ``python run.py …`` call, as ``bench nightly`` runs it) at
   the good and at the bad commit; every run is an ordinary run of the store, tagged
   ``target_commit``, ``target_ref=bisect``, ``bisect.id`` and ``bisect.good``/``bisect.bad``;
3. stop unless the step reproduces at the ends (see :mod:`runners.analysis.bisection`);
4. ``git bisect`` over the first-parent history between them (a merged pull request is one
   step): the suite runs at each commit git picks, which is *bad* when its level lies at
   least halfway from the good level to the bad level; a commit whose runs failed is
   skipped, as ``git bisect skip`` does;
5. print the first bad commit, the level at each tested commit and the runs; every run
   gets the tags ``bisect.judged`` (good, bad or skip) and ``bisect.result``.

The judged series is one metric of one experiment: ``--experiment`` (default: that of the
suite's first run) and ``--metric`` (default: its headline figure of merit, per trial).

Exit code: 0 when the first bad commit is named; 1 when the step does not reproduce at the
ends; 3 when the bisection could not finish (the suite failed at an end, or only skipped
commits are left: the candidates are listed); 2 on bad input (an ``--experiment`` or
``--metric`` the good end's runs lack is found after they ran: they are kept, tagged
``bisect.result=stopped``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runners.analysis.bisection import ALPHA, MIN_EFFECT, Step, classify, judge_step, level
from runners.analysis.table import available_metrics, listing, render
from runners.cli.compare import headlines
from runners.cli.options import DEFAULT_ARTIFACTS, DEFAULT_URI, fail, open_store
from runners.cli.suite import (
    EntryResult,
    git,
    git_failure,
    load_suite,
    private_clone,
    resolve_commit,
    run_suite,
)
from runners.config.schema import PROJECT_ROOT
from runners.errors import InputError
from runners.tracking.trials import metric_history

if TYPE_CHECKING:
    import pandas as pd

FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)


@dataclass
class Tested:
    """A commit the suite ran at, and how it was judged."""

    commit: str
    role: str                           # good end, bad end or tested
    runs: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    verdict: str = "skip"               # good, bad or skip
    fraction: float | None = None       # where its level lies on the step (0 good, 1 bad)


@dataclass
class Bisection:
    """One bisection: its id, the clone, the suite and what it measured so far."""

    args: argparse.Namespace
    clone: Path
    entries: list[list[str]]
    good: str
    bad: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 1000)
    experiment: str = ""
    metric: str = ""                    # the runs-table column, e.g. metric.t.median
    direction: str = "lower"
    unit: str = ""
    tested: list[Tested] = field(default_factory=list)

    def measure(self, commit: str, role: str) -> Tested:
        """Run the suite at ``commit`` (already checked out) and read its runs."""
        store = [f"tracking.uri={self.args.tracking_uri}"]
        if self.args.artifact_root:
            store.append(f"tracking.artifact_root={self.args.artifact_root}")
        tags = {"target_commit": commit, "target_ref": "bisect", "bisect.id": self.id,
                "bisect.good": self.good, "bisect.bad": self.bad}
        print(f"bisect: {role} {commit[:12]} {subject(self.clone, commit)}", flush=True)
        results = run_suite(self.entries, self.clone, tags, store, Path(self.args.project),
                            label="bisect", capture=True)
        show_failures(results)
        frame = self.runs_at(commit)
        tested = Tested(commit, role, [str(r) for r in frame["run_id"]])   # every run made
        self.tested.append(tested)
        if not self.experiment:
            self.choose_series(frame)           # raises InputError
            if not self.experiment:             # nothing finished: no series to choose
                return tested
        runs = frame[(frame["experiment"] == self.experiment) & (frame["status"] == "FINISHED")]
        if self.metric in runs.columns and runs[self.metric].notna().any():
            hashes = sorted({str(h) for h in runs.get("tag.config.hash", []) if h == h})
            if len(hashes) > 1:
                raise InputError(f"the suite ran {len(hashes)} configurations of "
                                 f"{self.experiment} at {commit[:12]} (a sweep?); bisect "
                                 "judges one: give a suite whose entry for it runs one")
            tested.samples = self.samples(runs)
        return tested

    def runs_at(self, commit: str) -> pd.DataFrame:
        """The runs this bisection made at ``commit`` (any status), oldest first."""
        import pandas as pd

        try:
            frame = open_store(self.args.tracking_uri).runs_table(None,
                                                                  since_ms=self.started_ms)
        except InputError:                      # no store yet: every entry failed early
            return pd.DataFrame(columns=["run_id", "experiment", "status"])
        for tag in ("tag.bisect.id", "tag.target_commit"):
            if tag not in frame.columns:
                return frame.iloc[0:0]
        return frame[(frame["tag.bisect.id"] == self.id)
                     & (frame["tag.target_commit"] == commit)]

    def choose_series(self, frame: pd.DataFrame) -> None:
        """Pick the experiment and metric from the runs at the good end (none when no run
        finished there)."""
        done = frame[frame["status"] == "FINISHED"]
        names = list(dict.fromkeys(str(e) for e in done["experiment"]))
        if not names:
            return
        wanted = self.args.experiment or names[0]
        if wanted not in names:
            raise InputError(f"--experiment {wanted!r} has no finished run at the good end; "
                             f"the suite ran {listing(names)}")
        runs = done[done["experiment"] == wanted]
        if self.args.metric:
            have = available_metrics(runs)
            name = next((m for m in (f"{self.args.metric}.median", self.args.metric)
                         if m in have), "")
            if not name:
                raise InputError(f"--metric {self.args.metric!r} is not a metric of "
                                 f"{wanted}; available: {listing(have, 8)}")
            self.metric = f"metric.{name}"
        else:
            heads = headlines(runs)
            if wanted not in heads:
                raise InputError(f"{wanted} records no figure of merit; give --metric, one "
                                 f"of {listing(available_metrics(runs), 8)}")
            self.metric = heads[wanted]
        self.experiment = wanted
        base = self.per_trial()
        first = runs.iloc[0]
        self.direction = str(first.get(f"tag.direction.{base}") or "lower")
        unit = first.get(f"tag.unit.{base}")
        self.unit = str(unit) if isinstance(unit, str) else ""

    def per_trial(self) -> str:
        """The per-trial metric behind the judged one (``t`` for ``t.median``)."""
        return self.metric.removeprefix("metric.").removesuffix(".median")

    def samples(self, runs: pd.DataFrame) -> list[float]:
        """Every trial's value of the judged metric in ``runs`` (a curve's: its value)."""
        history = None
        if self.metric.endswith(".median"):         # the per-trial metric's history
            history = metric_history(self.args.tracking_uri, [str(r) for r in runs["run_id"]],
                                     [self.per_trial()])
        values: list[float] = []
        for run_id, value in zip(runs["run_id"], runs[self.metric], strict=True):
            trials = [] if history is None else \
                [float(v) for v in history.loc[history["run_id"] == run_id, "value"]]
            values += trials or ([float(value)] if value == value else [])
        return values

    def show(self, value: float) -> str:
        """A level with its unit."""
        return f"{value:.4g}{' ' + self.unit if self.unit else ''}"

    def tag_runs(self, result: str) -> None:
        """Write ``bisect.judged`` and ``bisect.result`` on every run made."""
        from runners.tracking.tracker import Tracker

        writer = Tracker(self.args.tracking_uri)
        for tested in self.tested:
            for run_id in tested.runs:
                writer.set_tags(run_id, {"bisect.judged": tested.verdict,
                                         "bisect.result": result})

    def table(self) -> str:
        """The tested commits, oldest first, with their levels, verdicts and runs."""
        import pandas as pd

        order = self.history()
        rows = []
        def position(t: Tested) -> int:
            return order.index(t.commit) if t.commit in order else len(order)

        for t in sorted(self.tested, key=position):
            rows.append({"commit": t.commit[:12], "subject": subject(self.clone, t.commit)[:40],
                         "role": t.role, label_of(self.metric):
                         self.show(level(t.samples)) if t.samples else "-",
                         "of step": "-" if t.fraction is None else percent(t.fraction),
                         "verdict": t.verdict, "runs": ",".join(r[:12] for r in t.runs) or "-"})
        return render(pd.DataFrame(rows), "table")

    def history(self) -> list[str]:
        """The commits from good to bad, oldest first (first-parent, both ends included)."""
        between = git("rev-list", "--first-parent", "--reverse", f"{self.good}..{self.bad}",
                      cwd=self.clone).split()
        return [self.good, *between]


def label_of(column: str) -> str:
    """``metric.t.median`` -> ``t.median``."""
    return column.removeprefix("metric.")


def percent(fraction: float) -> str:
    """``0.499`` -> ``50%`` (never ``-0%``)."""
    return f"{int(round(fraction * 100)) or 0}%"


def subject(clone: Path, commit: str) -> str:
    """The first line of a commit's message."""
    return git("log", "-1", "--format=%s", commit, cwd=clone)


def show_failures(results: list[EntryResult]) -> None:
    """Print the end of the output of every suite entry that failed."""
    for r in results:
        if r.code != 0:
            tail = "\n".join("    " + line for line in r.output.splitlines()[-12:])
            print(f"  failed (exit {r.code}): {r.command}\n{tail}", flush=True)


def ends(clone: Path, good_ref: str, bad_ref: str, repo: str) -> tuple[str, str]:
    """The good and bad commits; InputError unless both exist and good is an ancestor."""
    good, bad = resolve_commit(clone, good_ref), resolve_commit(clone, bad_ref)
    for option, ref, commit in (("--good", good_ref, good), ("--bad", bad_ref, bad)):
        if not commit:
            raise InputError(f"{option} commit {ref!r} not found in {repo}")
    if good == bad:
        raise InputError(f"--good {good_ref} and --bad {bad_ref} are the same commit "
                         f"{good[:12]}; give the last good and a later bad commit")
    ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", good, bad], cwd=clone,
                              capture_output=True, timeout=600).returncode == 0
    if not ancestor:
        raise InputError(f"--good {good_ref} ({good[:12]}) is not an ancestor of --bad "
                         f"{bad_ref} ({bad[:12]}); bisect needs an older good commit on the "
                         "bad commit's history")
    return good, bad


def bisect_git(clone: Path, *args: str) -> str:
    """Run ``git bisect …`` in the clone; its stdout and stderr (git exits non-zero when
    only skipped commits are left, which is an answer, not a failure)."""
    proc = subprocess.run(["git", "bisect", *args], cwd=clone, capture_output=True,
                          text=True, timeout=600)
    return proc.stdout + proc.stderr


def fraction_option(option: str, text: str, high: float) -> float:
    """A fraction option in ``[0, high]``, ``5%`` allowed; InputError otherwise."""
    word = text.strip()
    try:
        value = float(word[:-1]) / 100 if word.endswith("%") else float(word)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:
        raise InputError(f"{option} {text!r} is not a fraction in [0, {high:g}]; "
                         f"e.g. {option} 0.05 or 5%")
    return value


def cmd_bisect(args: argparse.Namespace) -> int:
    """Run a suite at commits between a good and a bad one until the first bad is named."""
    try:
        args.min_effect = fraction_option("--min-effect", str(args.min_effect), 10.0)
        args.alpha = fraction_option("--alpha", str(args.alpha), 0.5)
        entries = load_suite(Path(args.suite))
        clone = private_clone(args.repo, Path(args.cache), "bisect")
        bisect_git(clone, "reset")          # what an interrupted bisection left behind
        good, bad = ends(clone, args.good, args.bad, args.repo)
    except ValueError as exc:               # InputError too
        return fail(str(exc))
    except subprocess.CalledProcessError as exc:
        return fail(git_failure(exc, args.repo))
    bisection = Bisection(args, clone, entries, good, bad)
    try:
        return run(bisection)
    except InputError as exc:               # the series asked for is not in the runs made
        bisection.tag_runs("stopped")
        return fail(str(exc))
    except subprocess.CalledProcessError as exc:
        bisection.tag_runs("unfinished")
        print(f"bisect: {git_failure(exc, args.repo)}")
        return 3
    finally:
        bisect_git(clone, "reset")


def run(b: Bisection) -> int:
    """Measure the ends, check the step, then let ``git bisect`` pick the commits."""
    between = len(b.history()) - 2
    print(f"bisect {b.id}: {b.args.repo}: good {b.good[:12]}, bad {b.bad[:12]}, "
          f"{between} commits between them", flush=True)
    for commit, role in ((b.good, "good end"), (b.bad, "bad end")):
        git("reset", "--quiet", "--hard", cwd=b.clone)
        git("checkout", "--quiet", "--detach", commit, cwd=b.clone)
        if not b.measure(commit, role).samples:
            b.tag_runs("unfinished")
            what = f"{label_of(b.metric)} of {b.experiment}" if b.experiment else "anything"
            print(f"bisect: no finished run measured {what} at the {role} {commit[:12]}; "
                  "see the failures above")
            return 3
    low, high = b.tested
    low.verdict, low.fraction, high.verdict, high.fraction = "good", 0.0, "bad", 1.0
    step = judge_step(low.samples, high.samples, b.direction, b.args.min_effect, b.args.alpha)
    if not step.reproduces:
        b.tag_runs("no step")
        print(f"bisect: the step does not reproduce at the ends: good {b.show(step.good)}, "
              f"bad {b.show(step.bad)} ({step.change:+.0%}); {step.why}")
        return 1
    print(f"bisect: the step reproduces: {describe(b, step)}", flush=True)
    out = bisect_git(b.clone, "start", "--first-parent", b.bad, b.good)
    for _ in range(between + 1):        # git needs at most one test per commit between
        if FIRST_BAD.search(out) or "only 'skip'ped commits left" in out:
            break
        if "Bisecting:" not in out:
            b.tag_runs("unfinished")
            print(f"bisect: git bisect stopped: {' '.join(out.split())[:300]}")
            return 3
        commit = git("rev-parse", "HEAD", cwd=b.clone)
        tested = b.measure(commit, "tested")
        if tested.samples:
            tested.verdict, tested.fraction = classify(level(tested.samples), step.good,
                                                       step.bad)
            print(f"bisect: {commit[:12]}: {b.show(level(tested.samples))}, "
                  f"{percent(tested.fraction)} of the step: {tested.verdict}", flush=True)
        else:
            print(f"bisect: {commit[:12]}: no finished run measured it: skip", flush=True)
        git("reset", "--quiet", "--hard", cwd=b.clone)
        out = bisect_git(b.clone, tested.verdict, commit)
    found = FIRST_BAD.search(out)
    runs = sum(len(t.runs) for t in b.tested)
    where = f"{runs} runs, tagged bisect.id={b.id} (bench compare --where bisect.id={b.id} " \
            f"--by target_commit)"
    if not found:
        left = re.findall(r"^([0-9a-f]{40})$", out, re.M)
        b.tag_runs("unfinished")
        if "only 'skip'ped commits left" not in out:
            print(f"bisect: git bisect did not finish: {' '.join(out.split())[:300]}")
            return 3
        candidates = ", ".join(c[:12] for c in left) or "them"
        print(f"bisect {b.id}: a skipped commit (its runs failed) hides the step; the first "
              f"bad commit is one of {candidates}\n{b.table()}{where}")
        return 3
    first = found.group(1)
    b.tag_runs(first)
    print(f"bisect {b.id}: first bad commit {first} {subject(b.clone, first)}\n"
          f"{describe(b, step)}; {len(b.tested) - 2} of {between} commits between the ends "
          f"tested\n{b.table()}{where}")
    return 0


def describe(b: Bisection, step: Step) -> str:
    """The judged series and its step, on one line."""
    test = "" if step.p_value is None else f", Mann-Whitney p = {step.p_value:.2g}"
    return (f"{label_of(b.metric)} of {b.experiment} ({b.direction} is better): good "
            f"{b.show(step.good)}, bad {b.show(step.bad)} ({step.change:+.0%}{test})")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench bisect``."""
    p = verbs.add_parser("bisect", help=cmd_bisect.__doc__, description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True, help="the benchmarked git repository (URL or path)")
    p.add_argument("--good", required=True, help="a commit (or branch, tag) without the step")
    p.add_argument("--bad", required=True, help="a later commit with the step")
    p.add_argument("--suite", required=True,
                   help="YAML suite: experiments: [[run.py args...], ...] (as nightly's)")
    p.add_argument("--experiment", default="", metavar="NAME",
                   help="the experiment judged (default: that of the suite's first run)")
    p.add_argument("--metric", default="", metavar="NAME",
                   help="the metric judged; a base name means its median (default: the "
                        "experiment's headline figure of merit)")
    p.add_argument("--min-effect", default=str(MIN_EFFECT), metavar="X",
                   help="smallest change of the ends' medians that is a step, as a fraction "
                        "or a percentage (default: %(default)s)")
    p.add_argument("--alpha", default=str(ALPHA), metavar="P",
                   help="largest Mann-Whitney p over the ends' trials that is a step "
                        "(default: %(default)s, what 3 trials against 3 can reach)")
    p.add_argument("--tracking-uri", default=DEFAULT_URI)
    p.add_argument("--artifact-root", default=DEFAULT_ARTIFACTS)
    p.add_argument("--cache", default=str(PROJECT_ROOT / ".cache"),
                   help="where the repository is cloned (default: %(default)s)")
    p.add_argument("--project", default=str(PROJECT_ROOT), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bisect)
