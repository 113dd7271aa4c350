"""The analysis verbs at scale: ``bench compare``, ``regress`` and ``report`` on 10,000+ runs.

A generated SQLite MLflow store of 10,000 runs (``--runs``; cached under
``.cache/bench-analysis-10k/``, ``-100k/`` ..., and reused while :data:`GENERATOR_VERSION`
is unchanged) stands for a year of nightly
results: experiments ``mpi4py_import`` and ``osu`` on 4 machines × 2 filesystems × 4 rank
counts (64 configurations, ~156 runs each), a new commit every 50 runs, ~3% noise, a 20%
step halfway in three series and ~2% FAILED runs with ``failure.*`` tags.

Targets (wall time of the real command, median of 3, alternating):
``bench compare`` ≤ 3 s, ``bench regress --dry-run`` over all series ≤ 5 s,
``bench report`` ≤ 15 s.  Bare ``python -c 'import runners.cli.main'`` and
``python -c 'import mlflow'`` run alongside as the fixed start-up cost.

How the store is made fast: ``runners.tracking.tracker.Tracker`` creates it (schema, WAL, the two
experiments); the first ``--client-runs`` runs go through ``MlflowClient`` (create_run +
one log_batch + set_terminated, ``--threads`` threads) to measure that path, and the rest
are inserted with ``sqlite3.executemany`` in one transaction into the same five tables
MLflow writes (runs, tags, params, metrics, latest_metrics), row for row as MlflowClient
writes them; for each experiment a client-made and an SQL-made run are then compared
through ``get_run``.  Each store size is a section of ``results/analysis_scale.md``
(``--label`` tells apart figures of the same size, e.g. before a change).

    python benchmarks/analysis_scale.py [--runs 10000] [--reps 3] [--regen] [--label TEXT]
        [--client-runs 300] [--threads 1] [--profile {auto,all,none}]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import json
import math
import os
import pstats
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine_line, med, write_result  # noqa: E402

#: Bump when the generated data changes: a cached store of another version is regenerated.
GENERATOR_VERSION = 1
SEED = 20261121
#: Fixed start of the history (so the same version always makes the same store).
START = dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
SPACING_MS = 20 * 60 * 1000          # a run every ~20 minutes (10,000 runs ≈ 139 days)
COMMIT_EVERY = 50
FAILED_SHARE = 0.02
NOISE = 0.03                          # run-to-run noise of a median
TRIAL_NOISE = 0.02                    # trial-to-trial noise inside a run

EXPERIMENTS = {"mpi4py_import": {"trials": 5, "total_s": 0.35, "rss": 96.0},
               "osu": {"trials": 3, "total_s": 2.4, "rss": 62.0}}
MACHINES = {"perlmutter": 1.0, "polaris": 1.15, "cori": 1.45, "theta": 1.9}
FILESYSTEMS = {"tmpfs": {"mpi4py_import": 1.0, "osu": 1.0},
               "scratch": {"mpi4py_import": 1.7, "osu": 1.04}}
RANKS = (1, 2, 4, 8)
#: (experiment, machine, fs, ranks) -> (metric base, factor) from the middle of the history on.
STEPS = {("mpi4py_import", "polaris", "scratch", 4): ("total_s", 1.2),
         ("osu", "perlmutter", "tmpfs", 8): ("total_s", 1.2),
         ("mpi4py_import", "theta", "tmpfs", 2): ("peak_rss_mb", 1.2)}
FAILURES = (("bench", "timeout", "trial 2 exceeded bench.timeout_s=600.0"),
            ("bench", "error", "mpiexec exited with status 137"),
            ("bench", "parse", "no result line in the output of rank 0"),
            ("parsl", "scheduler", "the block was not scheduled within 600 s"))

TARGETS = {"compare": 3.0, "regress": 5.0, "report": 15.0, "baseline show": 2.0}
#: Verbs whose target is a ratio to another verb's median, measured side by side.
RATIOS = {"regress --against reference": ("regress", 1.2)}
PROFILED = ("_find_and_load", "runs_table", "runs_table_sql", "search_runs", "_search_runs",
            "to_mlflow_entity", "from_records", "pivot", "regress_frame", "judge_frame",
            "series_table", "verdicts", "write_pngs", "write_pdf", "savefig", "render_html",
            "to_csv")


@dataclass
class RunSpec:
    """One run to write: everything MLflow stores about it."""

    experiment: str
    start_ms: int
    end_ms: int
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)


def config_hash(params: dict[str, str]) -> str:
    """Hash of a run's params, like runners.run.lifecycle.config_hash of the resolved config."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def trial_stats(rng: random.Random, center: float, trials: int) -> dict[str, float]:
    """median/min/max/mean/std of ``trials`` noisy trials around ``center``."""
    values = sorted(center * math.exp(rng.gauss(0.0, TRIAL_NOISE)) for _ in range(trials))
    mean = sum(values) / trials
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (trials - 1))
    mid = trials // 2
    median = values[mid] if trials % 2 else (values[mid - 1] + values[mid]) / 2
    return {"median": median, "min": values[0], "max": values[-1], "mean": mean, "std": std}


def specs(n: int, seed: int = SEED) -> list[RunSpec]:
    """The ``n`` runs of the store, oldest first (deterministic for a seed)."""
    rng = random.Random(seed)
    configs = [(e, m, f, r) for e in EXPERIMENTS for m in MACHINES for f in FILESYSTEMS
               for r in RANKS]
    order: list[tuple[str, str, str, int]] = []
    while len(order) < n:                   # shuffled rounds: every series grows evenly
        block = configs[:]
        rng.shuffle(block)
        order.extend(block)
    start0 = int(START.timestamp() * 1000)
    out = []
    for i, (exp, machine, fs, ranks) in enumerate(order[:n]):
        info = EXPERIMENTS[exp]
        params = {"bench.name": exp, "bench.ranks": str(ranks),
                  "bench.trials": str(info["trials"]), "machine.name": machine,
                  "fs.name": fs}
        commit = hashlib.sha1(f"commit-{i // COMMIT_EVERY}".encode()).hexdigest()
        tags = {"machine": machine, "fs": fs, "bench": exp, "config.hash": config_hash(params),
                "git.commit": commit, "mlflow.source.git.commit": commit,
                "direction.total_s": "lower", "mlflow.user": "bench",
                "mlflow.runName": f"{exp}-{machine}-{fs}-r{ranks}"}
        start = start0 + i * SPACING_MS + rng.randrange(0, 5 * 60 * 1000)
        scale = {"total_s": MACHINES[machine] * FILESYSTEMS[fs][exp]
                 * (1 + 0.18 * math.log2(ranks)),
                 "peak_rss_mb": 1 + 0.04 * math.log2(ranks)}
        step = STEPS.get((exp, machine, fs, ranks))
        if step is not None and i >= n // 2:
            scale[step[0]] *= step[1]
        total = info["total_s"] * scale["total_s"] * math.exp(rng.gauss(0.0, NOISE))
        rss = info["rss"] * scale["peak_rss_mb"] * math.exp(rng.gauss(0.0, NOISE))
        if rng.random() < FAILED_SHARE:
            stage, kind, message = rng.choice(FAILURES)
            tags.update({"failure.stage": stage, "failure.kind": kind,
                         "failure.message": message})
            end = start + int(1000 * rng.uniform(5, 60))
            out.append(RunSpec(exp, start, end, "FAILED", tags, params))
            continue
        trials = int(info["trials"])
        metrics = {f"total_s.{k}": v for k, v in trial_stats(rng, total, trials).items()}
        metrics["peak_rss_mb.median"] = rss
        end = start + int(1000 * (8 + trials * metrics["total_s.mean"]))
        out.append(RunSpec(exp, start, end, "FINISHED", tags, params, metrics))
    return out


def write_client(client: Any, exp_ids: dict[str, str], runs: list[RunSpec],
                 threads: int) -> list[str]:
    """Write runs through MlflowClient: create_run + one log_batch + set_terminated each."""
    from mlflow.entities import Metric, Param

    def one(spec: RunSpec) -> str:
        run = client.create_run(exp_ids[spec.experiment], start_time=spec.start_ms,
                                tags=spec.tags, run_name=spec.tags["mlflow.runName"])
        run_id = str(run.info.run_id)
        client.log_batch(run_id,
                         metrics=[Metric(k, v, spec.end_ms, 0) for k, v in spec.metrics.items()],
                         params=[Param(k, v) for k, v in spec.params.items()])
        client.set_terminated(run_id, status=spec.status, end_time=spec.end_ms)
        return run_id

    if threads <= 1:
        return [one(s) for s in runs]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, runs))


def write_sql(db: Path, exp_ids: dict[str, str], runs: list[RunSpec], seed: int) -> list[str]:
    """Insert runs straight into MLflow's tables, one transaction, as MlflowClient would."""
    rng = random.Random(seed + 1)
    con = sqlite3.connect(db)
    try:
        locations = dict(con.execute("SELECT experiment_id, artifact_location FROM experiments"))
        run_rows, tag_rows, param_rows, metric_rows, latest_rows = [], [], [], [], []
        ids = []
        for spec in runs:
            run_id = f"{rng.getrandbits(128):032x}"
            ids.append(run_id)
            exp_id = int(exp_ids[spec.experiment])
            run_rows.append((run_id, spec.tags["mlflow.runName"], "UNKNOWN", "", "",
                             spec.tags.get("mlflow.user", "unknown"), spec.status,
                             spec.start_ms, spec.end_ms, "", "active",
                             f"{locations[exp_id]}/{run_id}/artifacts", exp_id, None))
            tag_rows += [(k, v, run_id) for k, v in spec.tags.items()]
            param_rows += [(k, v, run_id) for k, v in spec.params.items()]
            metric_rows += [(k, v, spec.end_ms, run_id, 0, 0) for k, v in spec.metrics.items()]
            latest_rows += [(k, v, spec.end_ms, 0, 0, run_id) for k, v in spec.metrics.items()]
        with con:
            con.executemany(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id, deleted_time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
            con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
            con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                            param_rows)
            con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, "
                            "is_nan) VALUES (?, ?, ?, ?, ?, ?)", metric_rows)
            con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
                            "run_uuid) VALUES (?, ?, ?, ?, ?, ?)", latest_rows)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return ids


def same_shape(client: Any, a: str, b: str) -> list[str]:
    """Differences between two runs as MLflow reads them (ids, times, values aside)."""
    ra, rb = client.get_run(a), client.get_run(b)
    diffs = []
    if not (ra.info.run_name and rb.info.run_name):
        diffs.append("info.run_name missing")
    for attr in ("experiment_id", "status", "lifecycle_stage", "user_id"):
        if getattr(ra.info, attr) != getattr(rb.info, attr):
            diffs.append(f"info.{attr}: {getattr(ra.info, attr)!r} != {getattr(rb.info, attr)!r}")
    if ra.info.artifact_uri.replace(a, "ID") != rb.info.artifact_uri.replace(b, "ID"):
        diffs.append(f"artifact_uri: {ra.info.artifact_uri} vs {rb.info.artifact_uri}")
    for part in ("tags", "params", "metrics"):
        ka, kb = set(getattr(ra.data, part)), set(getattr(rb.data, part))
        if ka != kb:
            diffs.append(f"{part}: {sorted(ka ^ kb)}")
    return diffs


def generate(cache: Path, n: int, client_runs: int, threads: int) -> dict[str, Any]:
    """Make the store in ``cache`` (replacing it) and return what generation took."""
    from runners.tracking.tracker import Tracker

    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    db = cache / "mlflow.db"
    t0 = time.perf_counter()
    all_runs = specs(n)
    t_specs = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracker = Tracker(f"sqlite:///{db}", str(cache / "artifacts"))
    exp_ids = {name: tracker.experiment_id(name) for name in EXPERIMENTS}
    t_schema = time.perf_counter() - t0
    k = min(client_runs, n)
    # the client's share is spread over the history (every n/k-th run), the rest is SQL
    picked = set(range(0, n, max(1, n // k))[:k]) if k else set()
    via_client = [r for i, r in enumerate(all_runs) if i in picked]
    via_sql = [r for i, r in enumerate(all_runs) if i not in picked]
    t0 = time.perf_counter()
    client_ids = write_client(tracker.online.client, exp_ids, via_client, threads)
    t_client = time.perf_counter() - t0
    tracker.online.client._tracking_client.store.engine.dispose()
    t0 = time.perf_counter()
    sql_ids = write_sql(db, exp_ids, via_sql, SEED)
    t_sql = time.perf_counter() - t0
    diffs: list[str] = []
    if client_ids and sql_ids:
        # one pair per experiment: a client-made and an SQL-made FINISHED run of it (the
        # client's share is every n/k-th run, so its first one may be of another experiment)
        pairs = 0
        for exp in EXPERIMENTS:
            a = next((i for i, r in zip(client_ids, via_client, strict=True)
                      if r.status == "FINISHED" and r.experiment == exp), None)
            b = next((i for i, r in zip(sql_ids, via_sql, strict=True)
                      if r.status == "FINISHED" and r.experiment == exp), None)
            if a is not None and b is not None:
                pairs += 1
                diffs += [f"{exp}: {d}" for d in same_shape(tracker.online.client, a, b)]
        if not pairs:
            diffs.append("no experiment has a FINISHED run made by each path to compare")
    con = sqlite3.connect(db)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("runs", "tags", "params", "metrics", "latest_metrics")}
    con.close()
    per_client = t_client / len(via_client) if via_client else float("nan")
    per_sql = t_sql / len(via_sql) if via_sql else float("nan")
    meta = {
        "version": GENERATOR_VERSION, "runs": n, "seed": SEED,
        "failed": sum(r.status == "FAILED" for r in all_runs),
        "series_per_metric": len({(r.experiment, r.tags["config.hash"]) for r in all_runs}),
        "client_runs": len(via_client), "threads": threads, "sql_runs": len(via_sql),
        "specs_s": t_specs, "schema_s": t_schema, "client_s": t_client, "sql_s": t_sql,
        "total_s": t_specs + t_schema + t_client + t_sql,
        "client_ms_per_run": 1000 * per_client, "sql_ms_per_run": 1000 * per_sql,
        "client_only_estimate_s": t_schema + n * per_client,
        "shape_differences": diffs, "rows": counts,
        "made": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if counts["runs"] != n or diffs:
        raise RuntimeError(f"generated store is wrong: {json.dumps(meta, indent=1)}")
    (cache / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def store(n: int, regen: bool, client_runs: int, threads: int) -> tuple[str, dict[str, Any], bool]:
    """``(uri, generation record, reused?)`` of the cached store of ``n`` runs."""
    name = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    cache = ROOT / ".cache" / f"bench-analysis-{name}"
    meta_path = cache / "meta.json"
    if not regen and meta_path.is_file() and (cache / "mlflow.db").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == GENERATOR_VERSION and meta.get("runs") == n:
            return f"sqlite:///{cache / 'mlflow.db'}", meta, True
    meta = generate(cache, n, client_runs, threads)
    return f"sqlite:///{cache / 'mlflow.db'}", meta, False


def commands(uri: str, out: Path) -> dict[str, list[str]]:
    """What is timed: the bare imports and the three verbs on the store."""
    py = sys.executable
    verb = [py, "-m", "runners.cli"]
    return {
        "import runners.cli.main": [py, "-c", "import runners.cli.main"],
        "import mlflow": [py, "-c", "import mlflow"],
        "compare": [*verb, "compare", "--tracking-uri", uri],
        "regress": [*verb, "regress", "--tracking-uri", uri, "--dry-run"],
        "regress --against reference": [*verb, "regress", "--tracking-uri", uri, "--dry-run",
                                        "--against", "reference"],
        "baseline show": [*verb, "baseline", "show", "--tracking-uri", uri],
        "report": [*verb, "report", "--tracking-uri", uri, "--output", str(out / "report")],
    }


def run_timed(argv: list[str]) -> tuple[float, int, str, str, float]:
    """``(wall s, exit code, stdout, stderr, CPU s)`` of one command run from the project
    root; CPU is the child's user + system time (less sensitive to other jobs than wall)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, done.returncode, done.stdout, done.stderr, cpu


def ok(name: str, rc: int) -> bool:
    """``regress`` exits 1 when it finds regressions (the store has planted ones)."""
    return rc == 0 or (name.startswith("regress") and rc == 1)


def profile(name: str, argv: list[str], tmp: Path) -> str:
    """One run of a verb under cProfile: cumulative seconds of the functions that matter."""
    prof = tmp / f"{name}.prof"
    py, rest = argv[0], argv[3:]          # drop "-m runners.cli"
    t0 = time.perf_counter()
    subprocess.run([py, "-m", "cProfile", "-o", str(prof), "-m", "runners.cli", *rest],
                   capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    stats: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    best: dict[str, float] = {}
    for (_file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items():
        if func in PROFILED:
            best[func] = max(best.get(func, 0.0), ct)
    total = max((v[3] for v in stats.values()), default=0.0)
    parts = ", ".join(f"{f} {best[f]:.2f}" for f in PROFILED if best.get(f, 0) >= 0.05)
    return (f"- `{name}` under cProfile: wall {wall:.1f} s, profiled {total:.1f} s; "
            f"cumulative s: {parts} (`_find_and_load` = imports)")


#: In a child: the phases every verb goes through, and the same table read by plain SQL.
PHASES = """
import gc, inspect, json, sqlite3, sys, time
t0 = time.perf_counter()
import pandas as pd
from runners.tracking.query import StoreReader
t1 = time.perf_counter()
tracker = StoreReader(sys.argv[1])
tracker.experiment_ids()
t2 = time.perf_counter()
frame = tracker.runs_table(None)
t3 = time.perf_counter()
out = {"imports": t1 - t0, "tracker": t2 - t1, "runs_table": t3 - t2, "rows": len(frame),
       "cols": frame.shape[1]}
if len(frame) > 20000:            # the ORM path takes minutes on a big store: not timed
    out.update(paged=float("nan"), paged_nogc=float("nan"))
elif "bulk" in inspect.signature(tracker.runs_table).parameters:
    t3 = time.perf_counter()
    tracker.runs_table(None, bulk=False)
    t4 = time.perf_counter()
    gc.disable()
    tracker.runs_table(None, bulk=False)
    out.update(paged=t4 - t3, paged_nogc=time.perf_counter() - t4)
    gc.enable()
else:
    gc.disable()
    t3 = time.perf_counter()
    tracker.runs_table(None)
    out.update(paged=out["runs_table"], paged_nogc=time.perf_counter() - t3)
    gc.enable()
t4 = time.perf_counter()
con = sqlite3.connect(sys.argv[1][len("sqlite:///"):])
wide = pd.read_sql("SELECT r.run_uuid AS run_id, e.name AS experiment, r.status, "
                   "r.start_time, r.end_time FROM runs r JOIN experiments e "
                   "USING (experiment_id) WHERE r.lifecycle_stage = 'active'", con)
parts = []
for table, prefix in (("params", "param."), ("tags", "tag."), ("latest_metrics", "metric.")):
    long = pd.read_sql(f"SELECT run_uuid AS run_id, key, value FROM {table}", con)
    parts.append(long.pivot(index="run_id", columns="key", values="value").add_prefix(prefix))
wide = wide.set_index("run_id").join(parts).reset_index()
out.update(sql=time.perf_counter() - t4, sql_rows=len(wide), sql_cols=wide.shape[1])
print(json.dumps(out))
"""


def phases(uri: str) -> str:
    """Imports, opening the store and reading the runs table, in one process."""
    done = subprocess.run([sys.executable, "-c", PHASES, uri], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        return f"- phases: failed: {done.stderr.strip().splitlines()[-1:]}"
    p = json.loads(done.stdout.strip().splitlines()[-1])
    return (f"- In one process: `import pandas, runners.tracking` {p['imports']:.2f} s; "
            f"`StoreReader(uri)` + first query {p['tracker']:.2f} s (imports mlflow and its "
            f"SQLAlchemy store, checks the schema); `StoreReader.runs_table(None)` as the verbs "
            f"call it {p['runs_table']:.2f} s for {p['rows']} runs × {p['cols']} columns; "
            f"through MlflowClient.search_runs (pages of 1000) {p['paged']:.2f} s, with the "
            f"cyclic GC disabled {p['paged_nogc']:.2f} s; the same wide table by plain "
            f"`sqlite3` + pandas pivot {p['sql']:.2f} s ({p['sql_rows']} × {p['sql_cols']}).")


def code_digests() -> dict[str, str]:
    """Digest of each runners/ source (the code under test may change meanwhile)."""
    return {path.relative_to(ROOT).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((ROOT / "runners").rglob("*.py"))}


def digest(files: dict[str, str]) -> str:
    """One digest of all the sources."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]


def record(title: str, body: str) -> Path:
    """Write ``body`` as the section ``## title`` of results/analysis_scale.md, keeping the
    file's other sections (other store sizes, figures before a change)."""
    path = RESULTS / "analysis_scale.md"
    sections: dict[str, str] = {}
    if path.is_file():
        text = path.read_text()
        for part in text.split("\n## ")[1:]:
            head, _, rest = part.partition("\n")
            sections[head.strip()] = rest.strip()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections[title] = f"Recorded {stamp} on {machine_line()}\n\n{body.strip()}"
    out = "".join(f"\n## {head}\n\n{rest}\n" for head, rest in sorted(
        sections.items(), key=lambda item: _order(item[0])))
    return write_result("analysis_scale", __doc__.split("\n")[0] + "\n" + out)


def _order(title: str) -> tuple[int, str]:
    """Sections by store size, then title."""
    digits = "".join(c for c in title.split(" ")[0] if c.isdigit())
    return (int(digits or 0), title)


def main() -> None:
    """Generate (or reuse) the store, time the commands, write results/analysis_scale.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--regen", action="store_true", help="regenerate the cached store")
    ap.add_argument("--client-runs", type=int, default=300,
                    help="runs written through MlflowClient (the rest by SQL)")
    ap.add_argument("--threads", type=int, default=1, help="threads of the client writes")
    ap.add_argument("--label", default="",
                    help="added to the section title of this store size, e.g. 'before'")
    ap.add_argument("--profile", choices=["auto", "all", "none"], default="auto",
                    help="profile verbs that miss their target or fail (auto), all, none")
    args = ap.parse_args()

    uri, meta, reused = store(args.runs, args.regen, args.client_runs, args.threads)
    print(f"store {uri} ({'reused' if reused else 'generated'}; generation took "
          f"{meta['total_s']:.1f} s)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-analysis-scale-"))
    cmds = commands(uri, tmp)
    code_before = code_digests()
    run_timed(cmds["compare"])             # warm-up: page cache of the store and the .pyc
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    codes: dict[str, list[int]] = {k: [] for k in cmds}
    errors: dict[str, list[str]] = {}
    outputs: dict[str, str] = {}
    loads = []
    for rep in range(args.reps):
        loads.append(os.getloadavg()[0])
        for name, argv in cmds.items():
            wall, rc, out, err, cpu = run_timed(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
            codes[name].append(rc)
            lines = [ln for ln in out.splitlines() if ln.strip()]
            if lines:
                outputs[name] = lines[0] if name == "compare" else lines[-1]
            if not ok(name, rc):
                tail = [ln for ln in err.splitlines() if ln.strip()]
                errors.setdefault(name, []).append(
                    f"rep {rep}, exit {rc}: {tail[-1] if tail else '(no stderr)'}")
            print(f"rep {rep} {name}: {wall:.2f} s, CPU {cpu:.2f} s (exit {rc})", flush=True)
    code_after = code_digests()

    def good(name: str) -> list[float]:
        """Walls of the repetitions that succeeded."""
        return [w for w, rc in zip(walls[name], codes[name], strict=True) if ok(name, rc)]

    start_cli, start_mlflow = med(walls["import runners.cli.main"]), med(walls["import mlflow"])
    rows, missed = [], []
    for name, values in walls.items():
        cells = ", ".join(f"{v:.2f}" + ("" if ok(name, rc) else f" (exit {rc})")
                          for v, rc in zip(values, codes[name], strict=True))
        if name in RATIOS:
            other, limit = RATIOS[name]
            ratio = med(good(name)) / med(good(other)) if good(name) and good(other) else 0.0
            verdict = "met" if 0 < ratio <= limit else "NOT met"
            rows.append(f"| `bench {name}` | {med(values):.2f} | {cells} | "
                        f"{med(cpus[name]):.2f} | ≤ {limit:g} × `{other}` (**{ratio:.2f}×**) | "
                        f"**{verdict}** | | |")
            continue
        if name not in TARGETS:
            rows.append(f"| `python -c '{name}'` | {med(values):.2f} | {cells} | "
                        f"{med(cpus[name]):.2f} | start-up | | | |")
            continue
        done = good(name)
        if not done:
            missed.append(name)
            rows.append(f"| `bench {name}` | – | {cells} | | ≤ {TARGETS[name]:g} | "
                        "**failed** | | |")
            continue
        m = med(done)
        verdict = "met" if m <= TARGETS[name] else "NOT met"
        if len(done) < len(values):
            verdict += f" ({len(values) - len(done)} rep(s) failed)"
        if m > TARGETS[name] or len(done) < len(values):
            missed.append(name)
        rows.append(f"| `bench {name}` | {m:.2f} | {cells} | {med(cpus[name]):.2f} | "
                    f"≤ {TARGETS[name]:g} | **{verdict}** | {m - start_cli:.2f} | {m - start_mlflow:.2f} |")
    chosen = {"auto": missed, "all": list(TARGETS), "none": []}[args.profile]
    chosen = [n for n in chosen if n in cmds]
    notes = [profile(n, cmds[n], tmp) for n in chosen]
    if chosen:
        notes.append(phases(uri))

    gen = (f"generated in {meta['total_s']:.1f} s ({meta['made']}; reused by this run)"
           if reused else f"generated by this run in {meta['total_s']:.1f} s")
    edited = sorted(f for f in code_before.keys() | code_after.keys()
                    if code_before.get(f) != code_after.get(f))
    changed = ("" if not edited else
               f" **Sources changed during the measurement** ({', '.join(edited)}; → "
               f"{digest(code_after)}): another session was editing them, so repetitions "
               "of the verbs using them may have run different code.")
    body = f"""Store: {meta['runs']} runs ({meta['failed']} FAILED) in 2 experiments
(`mpi4py_import`, `osu`), 4 machines × 2 fs × 4 rank counts = {meta['series_per_metric']}
series per metric, metrics total_s.median/min/max/mean/std and peak_rss_mb.median (~3%
noise, a 20% step halfway in 3 series), a new git.commit every {COMMIT_EVERY} runs; cached
in `.cache/bench-analysis-{meta['runs'] // 1000}k/` (generator version {meta['version']}),
{gen}.

Generation: schema + experiments via `Tracker` {meta['schema_s']:.1f} s;
{meta['client_runs']} runs through MlflowClient (create_run + log_batch + set_terminated,
{meta['threads']} thread(s)) {meta['client_s']:.1f} s = {meta['client_ms_per_run']:.1f} ms/run;
{meta['sql_runs']} runs by `sqlite3.executemany` into runs/tags/params/metrics/latest_metrics
in one transaction {meta['sql_s']:.2f} s = {meta['sql_ms_per_run']:.3f} ms/run. All runs
through MlflowClient would take ≈ {meta['client_only_estimate_s']:.0f} s. For each experiment a client-made
and an SQL-made run read back identically through `get_run` (same info fields, tag/param/metric
keys).

Wall time of the real commands from the project root, {args.reps} repetitions alternating
(after one untimed `compare` as warm-up); median over the repetitions that succeeded
(`regress` exits 1 because it finds the planted regressions: that counts as success);
"added" = median − median of the bare import (a verb that reads a SQL store without
MLflow's client need not import mlflow at all, so it can add less than `import mlflow`
costs). CPU = user + system time of the command's process (on a loaded host the wall
time grows with the other jobs, the CPU time much less). The machine is a shared 2-core
VM: other jobs run alongside (1-min load average at the start of each repetition:
{", ".join(f"{x:.2f}" for x in loads)}). runners/ sources digest {digest(code_before)}.{changed}

| command | median (s) | all (s) | CPU, median (s) | target (s) | verdict | added over `import runners.cli.main` (s) | added over `import mlflow` (s) |
| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |
{chr(10).join(rows)}

Start-up alone: `import runners.cli.main` {start_cli:.2f} s, `import mlflow` {start_mlflow:.2f} s.

Output of each verb (compare: its first line; regress, report: the last):

{chr(10).join(f"- `{n}`: {outputs.get(n, '')}" for n in [*TARGETS, *RATIOS])}
"""
    if errors:
        body += "\nErrors:\n\n" + "\n".join(f"- `{n}` {e}" for n, es in errors.items()
                                             for e in es) + "\n"
    if notes:
        body += ("\nWhere the time goes (extra runs, not timed above; cProfile slows the "
                 "verbs down):\n\n" + "\n".join(notes) + "\n")
    print(body)
    print(record(f"{meta['runs']:,} runs{f', {args.label}' if args.label else ''}", body))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
