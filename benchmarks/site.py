"""Site agents: runs queued for a warm agent vs direct runs vs ReFrame, side by side in one run.

1. ``site.wait`` no-op: wall of ``python run.py bench=sleep bench.params.seconds=0 site=local
   site.wait=true`` with an agent running, against ReFrame running one trivial test
   (``reframe_baseline.time_reframe``, n = 1) and today's direct ``python run.py`` of the
   same benchmark, alternating.  Targets: ≤ 2.0 s and ≤ 3 × ReFrame.
2. ``--n`` (100) queued no-op runs (a sweep with ``site=local``) through one agent: per run
   (last end − first claim) / n from the store (``end_time``, tag ``site.claimed_at``), and
   with the queueing (sweep command start → last end) / n; against ReFrame's amortized
   (wall(n) − wall(1)) / (n − 1), alternating.  Target ≤ 1.0 × ReFrame.  Where a run's time
   goes is read from the store and each run's ``events/events.csv``, and from one more
   sweep through an agent whose steps are timed (``PROFILER``).
3. ``--slurm``: ``--slurm-runs`` (10) consecutive ``site=slurm site.wait=true`` runs through
   one agent against as many direct ``machine=docker-slurm`` runs: distinct batch jobs
   (``sacct`` when the cluster keeps accounting, else the runs' ``scheduler.job_id`` tags)
   and, for each run after the first, ``site.queued_at`` → its first metric (≤ 1 s).
   Starts the local cluster (cluster/slurm/start.sh) unless it is up, and stops it then.
4. Fidelity: ``bench=osu bench.tests=[latency] bench.max_size=8 bench.ranks=2
   bench.trials=N`` (or ``--fidelity mpi4py_import``: its ``total_s``) through the agent vs
   directly, alternating; median of the runs' medians within ±5 %.

Everything (store, artifacts, agents' files) lives in a temporary directory, removed at
the end; every agent started is stopped.  ReFrame runs from its own venv under .cache/.

    python benchmarks/site.py [--reps 3] [--n 100] [--trials 10] [--fidelity osu] [--workers 2]
                              [--only wait,queue,fidelity,slurm] [--slurm [--accounting]]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, med, write_result  # noqa: E402
from reframe_baseline import ensure_reframe, time_reframe, time_reframe_startup  # noqa: E402

BIN = Path(sys.executable).parent
RUN_ID = re.compile(r"\[run ([0-9a-f]{32}) ")
PARENT = re.compile(r"under parent run ([0-9a-f]{32})")
NOOP = ["bench=sleep", "bench.params.seconds=0"]
PARTS = ("wait", "queue", "fidelity")     # on machine=local; "slurm" with --slurm

# An agent whose steps are timed: wraps the names runners.site.agent calls (and the
# tracker's writes), runs the agent as `python -m runners.site.agent` would, and writes
# {step: [calls, seconds]} as JSON at exit (argv: agent.yaml, output file).
PROFILER = """
import atexit, collections, json, sys, threading, time
import runners.site.agent as A
from runners.tracking.tracker import Tracker
stats = collections.defaultdict(lambda: [0, 0.0]); lock = threading.Lock()
def wrap(owner, name):
    fn = getattr(owner, name)
    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            with lock:
                stats[name][0] += 1; stats[name][1] += time.perf_counter() - t0
    setattr(owner, name, timed)
import runners.site.sweeps as S
for n in ("queued_runs", "brief", "claim", "set_status", "close_run", "validate",
          "close_parent"):
    wrap(A, n)
wrap(S, "child_statuses")
for n in ("execute", "run_claimed", "config_of"):
    wrap(A.Agent, n)
for n in ("set_tags", "log_metrics", "end_run"):
    wrap(Tracker, n)
atexit.register(lambda: open(sys.argv[2], "w").write(json.dumps(stats)))
sys.exit(A.main(sys.argv[1:2]))
"""
STEPS = {"execute": "a run on its worker thread, all of it (claim to sweep check)",
         "close_run": "its stages through Parsl and closing it (statistics, artifacts, tags)",
         "close_parent": "after the run ended: is its sweep over? (brief + child_statuses)",
         "child_statuses": "  of which: search_runs for one unfinished job of the sweep",
         "config_of": "its config (copied from the job's directory, else downloaded)",
         "brief": "brief: a run's status and tags (execute 1, close_parent 1)",
         "set_tags": "set_tags (claim tags, and in the run's close)",
         "set_status": "set_status RUNNING",
         "log_metrics": "log_metrics", "end_run": "end_run", "validate": "validate(cfg)",
         "claim": "claim (MLflow's immutable param)", "queued_runs": "the poll's query"}


def ok(met: bool) -> str:
    """The verdict, bold when a target is missed."""
    return "met" if met else "**NOT met**"


class Bench:
    """One temporary store, artifact root and site directory for every command."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.db = tmp, tmp / "s.db"
        self.store = [f"tracking.uri=sqlite:///{self.db}", f"tracking.artifact_root={tmp}/a"]
        self.env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                        PYTHONPATH=str(ROOT), BENCH_SITE_DIR=str(tmp / "sites"))
        self.count = 0

    def run_py(self, *args: str, sweep: bool = False) -> tuple[float, float, str]:
        """``python run.py ARGS`` on this store; return (start Unix time, wall s, output)."""
        self.count += 1
        out = f"hydra.{'sweep' if sweep else 'run'}.dir={self.tmp}/out/{self.count}"
        argv = [sys.executable, str(ROOT / "run.py"), *(["-m"] if sweep else []), *args,
                *self.store, out]
        t0, p0 = time.time(), time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=self.tmp)
        wall = time.perf_counter() - p0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return t0, wall, proc.stdout + proc.stderr

    def run_id(self, *args: str) -> tuple[float, str]:
        """Run ``python run.py ARGS``; return (wall s, its run id)."""
        _, wall, text = self.run_py(*args)
        found = RUN_ID.search(text)
        if found is None:
            raise RuntimeError(f"no run id in the output of run.py {args}:\n{text[-2000:]}")
        return wall, found.group(1)

    def cli(self, *args: str, check: bool = True) -> str:
        """``bench ARGS`` (this checkout's CLI) on this store's environment."""
        proc = subprocess.run([sys.executable, "-m", "runners.cli", *args], capture_output=True,
                              text=True, env=self.env, cwd=ROOT)
        if check and proc.returncode != 0:
            raise RuntimeError(f"bench {' '.join(args)} exited {proc.returncode}:\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return proc.stdout + proc.stderr

    @contextlib.contextmanager
    def agent(self, site: str, *overrides: str) -> Iterator[Path]:
        """An agent of ``site`` on this store while the block runs; yields its directory."""
        root = self.tmp / "sites" / site
        self.cli("site", "start", site, *overrides, *self.store)
        try:
            yield root
        finally:
            out = self.cli("site", "stop", site, *overrides, *self.store, "--timeout", "120",
                           check=False)
            with contextlib.suppress(OSError, ValueError):   # still there: end it
                pid = int((root / "agent.pid").read_text().split()[0])
                if "stopped" not in out:
                    os.kill(pid, 9)

    # -- the store, read with sqlite3 (the agent keeps writing to it) --------------------

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on the store."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=60)) as con:
            return con.execute(sql, args).fetchall()

    def status(self, run_id: str) -> str:
        """A run's status."""
        return str(self.query("SELECT status FROM runs WHERE run_uuid = ?", run_id)[0][0])

    def wait_ended(self, run_id: str, limit: float) -> str:
        """Wait (up to ``limit`` s) until a run is no longer SCHEDULED or RUNNING; return its
        status."""
        t0 = time.monotonic()
        while (status := self.status(run_id)) in ("SCHEDULED", "RUNNING"):
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"run {run_id} still {status} after {limit:g} s")
            time.sleep(0.2)
        return status

    def children(self, parent: str) -> list[str]:
        """The runs of a sweep."""
        return [str(r[0]) for r in self.query(
            "SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = ?", parent)]

    def tag(self, run_id: str, key: str) -> str | None:
        """One tag of a run."""
        rows = self.query("SELECT value FROM tags WHERE run_uuid = ? AND key = ?", run_id, key)
        return str(rows[0][0]) if rows else None

    def times(self, run_id: str) -> dict[str, float]:
        """A run's times (Unix s): queued, claimed, first metric, task start/done, end."""
        end = self.query("SELECT end_time FROM runs WHERE run_uuid = ?", run_id)[0][0]
        first = self.query("SELECT MIN(timestamp) FROM metrics WHERE run_uuid = ?", run_id)[0][0]
        t = {"queued": float(self.tag(run_id, "site.queued_at") or "nan"),
             "claimed": float(self.tag(run_id, "site.claimed_at") or "nan"),
             "first": float(first) / 1000 if first else float("nan"),
             "end": float(end) / 1000 if end else float("nan")}
        t.update(self.task_times(run_id))
        return t

    def task_times(self, run_id: str) -> dict[str, float]:
        """When the run's first task was submitted and its last was done (events.csv)."""
        found = list((self.tmp / "a").glob(f"*/{run_id}/artifacts/events/events.csv"))
        if not found:
            return {}
        with found[0].open() as f:
            rows = list(csv.DictReader(f))
        sub = [float(r["time"]) for r in rows if r["state"] == "submitted"]
        done = [float(r["time"]) for r in rows if r["state"] in ("done", "failed")]
        return {"submitted": min(sub), "done": max(done)} if sub and done else {}

    def metric(self, run_id: str, key: str, step: int = 0) -> float:
        """A run's latest value of a metric at ``step``."""
        rows = self.query("SELECT value FROM metrics WHERE run_uuid = ? AND key = ? AND step = ? "
                          "ORDER BY timestamp DESC LIMIT 1", run_id, key, step)
        return float(rows[0][0])


def part_wait(b: Bench, reps: int, reframe: Path) -> str:
    """1: one no-op run through a waiting submitter vs ReFrame's one test vs direct."""
    rows, site, rf, direct = [], [], [], []
    for i in range(reps):
        d, _ = b.run_id(*NOOP)
        s, _ = b.run_id(*NOOP, "site=local", "site.wait=true")
        r = float(time_reframe_startup(reframe, b.tmp / f"rf1-{i}")["wall_s"])
        direct.append(d)
        site.append(s)
        rf.append(r)
        rows.append(f"| {i} | {d:.2f} | {s:.2f} | {r:.2f} | {s / r:.2f} |")
    ratio = med(site) / med(rf)
    return f"""## 1. One no-op run with `site=local site.wait=true` (agent running) vs ReFrame, one test

`python run.py bench=sleep bench.params.seconds=0` directly (before), the same with
`site=local site.wait=true` through a running agent, and ReFrame running one trivial test
(n = 1: its start-up plus the test), alternating.

| rep | direct run.py (s) | site.wait run.py (s) | ReFrame 1 test (s) | site / ReFrame |
| --- | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

Median: direct {med(direct):.2f} s, through the agent {med(site):.2f} s, ReFrame {med(rf):.2f} s;
through the agent / ReFrame = {ratio:.2f}×, direct / through the agent = {med(direct) / med(site):.1f}×.
Targets: ≤ 2.0 s → {ok(med(site) <= 2.0)}; ≤ 3 × ReFrame → {ok(ratio <= 3.0)}.
"""


def one_sweep(b: Bench, n: int, workers: int) -> dict[str, Any]:
    """Queue an n-run no-op sweep for the agent, wait for its runs; return its figures."""
    # rerun=true: the same points again (else the sweep resumes: nothing left to run)
    t0, wall, text = b.run_py(*NOOP, f"+bench.params.k=range({n})", "site=local", "rerun=true",
                              sweep=True)
    found = PARENT.search(text)
    if found is None:
        raise RuntimeError(f"no parent run in the sweep's output:\n{text[-2000:]}")
    kids = b.children(found.group(1))         # all queued once the command returned
    if len(kids) != n:
        raise RuntimeError(f"sweep parent {found.group(1)} has {len(kids)} of {n} runs")
    ended = [b.wait_ended(k, 60 + 2 * n) for k in kids]
    t_end = time.monotonic()                  # the last job's end closes the parent
    while b.status(found.group(1)) == "SCHEDULED" and time.monotonic() - t_end < 10:
        time.sleep(0.2)
    ts = [b.times(k) for k in kids]
    first_claim, last_end = min(t["claimed"] for t in ts), max(t["end"] for t in ts)
    claims, ends = sorted(t["claimed"] for t in ts), sorted(t["end"] for t in ts)
    # The i-th claim (i >= workers) took the slot the (i - workers)-th end freed.
    gaps = [c - e for c, e in zip(claims[workers:], ends[:-workers], strict=False)]
    timed = [t for t in ts if "submitted" in t]

    def mean(key: str, start: str, rows: list[dict[str, float]]) -> float:
        return sum(t[key] - t[start] for t in rows) / max(len(rows), 1)

    return {"submit_s": wall, "per_run": (last_end - first_claim) / n,
            "per_run_queued": (last_end - t0) / n, "busy": mean("end", "claimed", ts),
            "prepare": mean("submitted", "claimed", timed), "task": mean("done", "submitted", timed),
            "close": mean("end", "done", timed), "gap": sum(gaps) / max(len(gaps), 1),
            "queued_to_claim": mean("claimed", "queued", ts),
            "failed": sum(e != "FINISHED" for e in ended), "parent": b.status(found.group(1))}


def part_queue(b: Bench, reps: int, n: int, reframe: Path, workers: int) -> str:
    """2: n queued no-op runs through one agent vs ReFrame's amortized time per test."""
    ours, rf, rows, brk = [], [], [], []
    for i in range(reps):
        f = one_sweep(b, n, workers)
        r = time_reframe(reframe, b.tmp / f"rfn-{i}", n)
        ours.append(f)
        rf.append(float(r["per_test_amortized_s"]))
        rows.append(f"| {i} | {f['submit_s']:.2f} | {f['per_run']:.3f} | "
                    f"{f['per_run_queued']:.3f} | {r['startup_wall_s']:.2f} | {r['wall_s']:.2f} "
                    f"| {rf[-1]:.3f} | {f['per_run'] / rf[-1]:.2f} | {f['failed']} | "
                    f"{f['parent']} |")
        brk.append(f"| {i} | {f['busy']:.3f} | {f['prepare']:.3f} | {f['task']:.3f} | "
                   f"{f['close']:.3f} | {f['gap']:.3f} | {f['queued_to_claim']:.1f} |")
    per_run = med([f["per_run"] for f in ours])
    queued = med([f["per_run_queued"] for f in ours])
    ratio = per_run / med(rf)
    m = {k: med([f[k] for f in ours]) for k in ("busy", "prepare", "task", "close", "gap")}
    return f"""## 2. {n} queued no-op runs through one agent ({workers} workers) vs ReFrame, {n} trivial tests

`python run.py -m bench=sleep bench.params.seconds=0 '+bench.params.k=range({n})' site=local`
queues {n} runs under a SCHEDULED parent; the agent runs them.  Per run: (last run's end −
first claim) / {n} from the store, and with the queueing (sweep command start → last end) / {n}.
ReFrame: (wall({n}) − wall(1)) / {n - 1}, serial, lean log.  Alternating.

| rep | sweep command (s) | ours per run (s) | ours per run incl. queueing (s) | ReFrame 1 test (s) | ReFrame {n} tests (s) | ReFrame per test (s) | ours / ReFrame | runs not FINISHED | parent |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(rows)}

Median per run: ours {per_run:.3f} s ({queued:.3f} s including queueing), ReFrame
{med(rf):.3f} s; ratio {ratio:.2f}×.  Target ≤ 1.0 × ReFrame → {ok(ratio <= 1.0)}.

Where a run's time goes (means over the {n} runs, from the store and each run's
`events/events.csv`): claim → end is the time a worker slot holds the run; of it, claim →
first task submitted (claim tags, status, config, validation, opening the stages), the
Parsl task (submitted → done) and closing (done → end: statistics, artifacts, tags).  The
gap is how long a freed slot waits for the next claim (the i-th claim minus the
(i − {workers})-th end): what the worker thread still does after the run's end (is its
sweep over?), the agent's next poll, and the claim (`site.claimed_at` is stamped after it).

| rep | claim → end (s) | claim → task submitted (s) | task (s) | task done → end (s) | slot gap (s) | queued → claimed (s) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(brk)}

Medians: a slot holds a run {m['busy']:.3f} s ({m['prepare']:.3f} + {m['task']:.3f} + {m['close']:.3f});
a freed slot waits {m['gap']:.3f} s for the next claim.  With {workers} slots the floor is
(hold + gap) / {workers} = {(m['busy'] + m['gap']) / workers:.3f} s per run.
"""


def part_profile(b: Bench, n: int, workers: int) -> str:
    """Where the agent's time goes: one n-run sweep through an agent whose steps are timed."""
    root = b.tmp / "sites" / "local"
    cfg, out, log = root / "agent.yaml", b.tmp / "profile.json", b.tmp / "profile.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-c", PROFILER, str(cfg), str(out)], stdout=f,
                                stderr=subprocess.STDOUT, env=b.env, cwd=ROOT)
    try:
        t0 = time.monotonic()
        while "agent ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError(f"the profiled agent did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        sweep = one_sweep(b, n, workers)
    finally:
        proc.terminate()
        proc.wait(120)
    stats = json.loads(out.read_text())
    rows = [f"| `{k}` | {label} | {stats[k][0]} | {stats[k][1] / n * 1000:.0f} |"
            for k, label in STEPS.items() if k in stats]
    return f"""### Where the agent's time goes: one more {n}-run sweep through an agent with timed steps

The same sweep through an agent started with its steps wrapped in timers (the names
`runners.site.agent` calls; `python -c PROFILER`): {sweep['per_run']:.3f} s per run
({sweep['failed']} not FINISHED; parent {sweep['parent']}).  Each
worker thread's time per run, in ms (total over the sweep / {n}); {workers} threads run at once.

| step | what | calls | ms per run |
| --- | --- | ---: | ---: |
{chr(10).join(rows)}
"""


FIDELITY = {   # bench → (its arguments, the figure: metric and step, and what it is)
    "osu": (["bench=osu", "bench.tests=[latency]", "bench.max_size=8"], "osu_latency", 8,
            "OSU latency at 8 B (µs)"),
    "mpi4py_import": (["bench=mpi4py_import"], "total_s.median", 0, "total_s (s)"),
}


def part_fidelity(b: Bench, reps: int, trials: int, bench: str) -> str:
    """4: the same benchmark's figure through the agent vs directly, alternating."""
    extra, key, step, what = FIDELITY[bench]
    args = [*extra, "bench.ranks=2", f"bench.trials={trials}"]
    b.run_id(*args)                                   # warm: its environment is built once
    direct, site, rows = [], [], []
    for i in range(reps):
        _, d = b.run_id(*args)
        _, s = b.run_id(*args, "site=local", "site.wait=true")
        direct.append(b.metric(d, key, step))
        site.append(b.metric(s, key, step))
        rows.append(f"| {i} | {direct[-1]:.4f} | {site[-1]:.4f} | {site[-1] / direct[-1]:.3f} |")
    ratio = med(site) / med(direct)
    return f"""## 4. Fidelity: `{' '.join(args)}` through the agent vs directly

Each run's `{key}`{f" at step {step}" if step else ""} (the median over its {trials} trials), alternating.

| rep | direct: {what} | through the agent: {what} | agent / direct |
| --- | ---: | ---: | ---: |
{chr(10).join(rows)}

Median: direct {med(direct):.4f}, through the agent {med(site):.4f}; ratio {ratio:.3f}
(per rep {min(s / d for s, d in zip(site, direct, strict=True)):.2f}–{max(s / d for s, d in zip(site, direct, strict=True)):.2f}).
Target within ±5 % → {ok(abs(ratio - 1) <= 0.05)}.
"""


@contextlib.contextmanager
def slurm_cluster(b: Bench, accounting: bool) -> Iterator[bool]:
    """The local Slurm cluster: started (and stopped after) unless it is up; yields whether
    ``sacct`` answers."""
    here = ROOT / "cluster" / "slurm"
    b.env["SLURM_CONF"] = str(ROOT / ".cluster" / "slurm" / "etc" / "slurm.conf")
    up = subprocess.run([str(here / "status.sh")], capture_output=True).returncode == 0
    if not up:
        proc = subprocess.run([str(here / "start.sh"), *(["--accounting"] if accounting else [])],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"cluster/slurm/start.sh failed:\n{proc.stderr[-2000:]}")
    try:
        sacct = subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True,
                               env=b.env).returncode == 0
        yield sacct
    finally:
        if not up:
            subprocess.run([str(here / "stop.sh")], capture_output=True)


def sacct_jobs(b: Bench, since: float) -> set[str]:
    """Batch jobs that sacct shows started since ``since`` (Unix s)."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-a", "-o", "JobID", "-S", start],
                         capture_output=True, text=True, env=b.env, check=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def slurm_runs(b: Bench, runs: int, extra: list[str], sacct: bool) -> dict[str, list[str]]:
    """``runs`` consecutive no-op runs on the local Slurm; their walls, job ids (tags and
    sacct) and, after the first, queued → first metric times."""
    t0 = time.time()
    out: dict[str, list[str]] = {"walls": [], "jobs": [], "firsts": [], "sacct": []}
    for i in range(runs):
        wall, rid = b.run_id(*NOOP, "fs=scratch", *extra)
        t = b.times(rid)
        out["walls"].append(f"{wall:.3f}")
        out["jobs"].append(b.tag(rid, "scheduler.job_id") or "?")
        if i and "site=slurm" in extra:
            out["firsts"].append(f"{t['first'] - t['queued']:.3f}")
    if sacct:
        out["sacct"] = sorted(sacct_jobs(b, t0))
    return out


def part_slurm(b: Bench, runs: int, accounting: bool) -> str:
    """3: consecutive site=slurm runs through one agent vs direct runs on the local Slurm."""
    with slurm_cluster(b, accounting) as sacct:
        with b.agent("slurm", "fs=scratch"):
            site = slurm_runs(b, runs, ["site=slurm", "site.wait=true"], sacct)
        direct = slurm_runs(b, runs, ["machine=docker-slurm"], sacct)
    rows = [f"| {how} | {runs} | {med([float(w) for w in f['walls']]):.2f} | "
            f"{len(set(f['jobs']))} ({', '.join(sorted(set(f['jobs'])))}) | "
            f"{len(f['sacct']) if sacct else 'no accounting'} |"
            for how, f in (("through the agent", site), ("direct", direct))]
    firsts = [float(x) for x in site["firsts"]]
    return f"""## 3. Local Slurm: {runs} consecutive runs through one agent vs {runs} direct runs

`python run.py bench=sleep bench.params.seconds=0 fs=scratch site=slurm site.wait=true`
through one agent (`bench site start slurm fs=scratch`), then the same without the site on
`machine=docker-slurm` (each builds its own Parsl and submits its own batch job).  Batch
jobs: the distinct `scheduler.job_id` tags of the runs, and the jobs `sacct` shows in each
window (when the cluster keeps accounting).

| how | runs | wall per run, median (s) | distinct jobs in the runs' tags | jobs in sacct |
| --- | ---: | ---: | --- | ---: |
{chr(10).join(rows)}

Through the agent, `site.queued_at` → first metric for each run after the first (s):
{', '.join(f'{x:.2f}' for x in firsts)}; median {med(firsts):.2f} s, max {max(firsts):.2f} s.
Targets: one batch job for the {runs} runs → {ok(len(set(site['jobs'])) == 1)}; ≤ 1 s to the
first result → {ok(max(firsts) <= 1.0)} (max), {ok(med(firsts) <= 1.0)} (median).
"""


def main() -> None:
    """Run the parts asked for; write benchmarks/results/site.md when all ran."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each part (default 3)")
    ap.add_argument("--n", type=int, default=100, help="queued runs in part 2 (default 100)")
    ap.add_argument("--trials", type=int, default=10, help="trials per fidelity run (10)")
    ap.add_argument("--fidelity", choices=sorted(FIDELITY), default="osu",
                    help="the fidelity part's benchmark (default osu: latency at 8 B)")
    ap.add_argument("--workers", type=int, default=2, help="site.workers of the agent (2)")
    ap.add_argument("--only", default=",".join(PARTS),
                    help=f"comma-separated parts among {','.join(PARTS)} (default all)")
    ap.add_argument("--slurm", action="store_true",
                    help="also the local Slurm part (cluster/slurm/start.sh; needs root)")
    ap.add_argument("--slurm-runs", type=int, default=10)
    ap.add_argument("--accounting", action="store_true",
                    help="start the local cluster with accounting (sacct) if it is not up")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--note", default="", help="a line for the result file (e.g. the host "
                                              "was shared with other work)")
    args = ap.parse_args()
    only = [p for p in args.only.split(",") if p]
    if bad := set(only) - {*PARTS, "slurm"}:
        raise SystemExit(f"--only takes parts among {', '.join(PARTS)}, slurm, not "
                         f"{', '.join(bad)}")
    slurm = args.slurm or "slurm" in only
    reframe = ensure_reframe(ROOT / ".cache" / "reframe")
    tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
    b, parts = Bench(tmp), []
    try:
        b.run_id(*NOOP)                                       # warm: page cache, store
        time_reframe_startup(reframe, tmp / "rf-warm")
        with b.agent("local", f"site.workers={args.workers}") if set(only) & set(PARTS) \
                else contextlib.nullcontext():
            if set(only) & set(PARTS):          # warm: the agent's first run
                b.run_id(*NOOP, "site=local", "site.wait=true")
            if "wait" in only:
                parts.append(part_wait(b, args.reps, reframe))
            if "queue" in only:
                parts.append(part_queue(b, args.reps, args.n, reframe, args.workers))
            if "fidelity" in only:
                parts.append(part_fidelity(b, args.reps, args.trials, args.fidelity))
        if "queue" in only:          # after the agent above stopped: one agent at a time
            parts.insert(2 if "wait" in only else 1, part_profile(b, args.n, args.workers))
        if slurm:            # numbered 3: before the fidelity part
            at = len(parts) - 1 if "fidelity" in only else len(parts)
            parts.insert(at, part_slurm(b, args.slurm_runs, args.accounting))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    body = "\n".join([*([args.note + "\n"] if args.note else []), *parts])
    print(body)
    if set(PARTS) <= set(only):
        print(write_result("site", body))


if __name__ == "__main__":
    main()
