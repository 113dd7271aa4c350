"""Cost of the spool: a run recorded offline and synced later vs the same run online.

Starts nothing: expects the tracking server of cluster/mlflow/ up (``cluster/mlflow/start.sh``)
at ``--uri`` (default ``$MLFLOW_TRACKING_URI``, else http://127.0.0.1:5055). Alternating the
variants, ``--reps`` times each (the order swapped every other repetition), after one
untimed warm-up run:

* online: ``run.py bench=sleep bench.params.seconds=0 bench.trials=5 tracking=server
  tracking.spool=<tmp>/spool`` against the server: wall time of the run.py process;
* offline: the same run with ``MLFLOW_TRACKING_URI`` on a closed local port, so it is
  journaled in the spool (wall time, size of its journal directory), then ``bench sync
  --spool <tmp>/spool --uri <server>`` (wall time of the sync, separately);
* ``--drivers K`` (default 0: skipped): K concurrent offline runs into one spool, then one
  sync of all of them.

Every run is then looked up on the server: recorded = FINISHED in the experiment (an
offline run by its ``spool.id`` tag), lost = started - recorded; a synced run must also
carry the same params, metric keys and top-level artifacts as an online one.

Prints Markdown tables; ``--write`` also saves them as results/spool.md.

    python benchmarks/spool.py [--reps 3] [--drivers 0] [--experiment spool-bench]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_line, med, require_server, write_result  # noqa: E402

BIN = Path(sys.executable).parent
RUN_ID = re.compile(r"\[run ([0-9a-f]{32}) FINISHED\]")
OFFLINE_WARNING = "cannot be reached"


@dataclass
class Bench:
    """What one benchmark invocation needs to start runs and find them again.

    Parameters
    ----------
    uri : str
        The real tracking server.
    experiment : str
        The experiment every run is recorded in.
    tmp : Path
        Scratch directory (spools and Hydra run directories).

    Attributes
    ----------
    calls : int
        run.py calls so far (numbers their Hydra run directories).
    online_ids, offline_ids : list of str
        The measured runs: server run ids (online), spool run ids (offline).
    """

    uri: str
    experiment: str
    tmp: Path
    calls: int = 0
    online_ids: list[str] = field(default_factory=list)     # server run ids
    offline_ids: list[str] = field(default_factory=list)    # spool (local) run ids

    def env(self, uri: str) -> dict[str, str]:
        """The environment of a child process: the venv first on PATH, tracking at ``uri``."""
        return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    MLFLOW_TRACKING_URI=uri, MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true")

    def run_argv(self, spool: Path) -> list[str]:
        """The argv of one no-op run.py call, in a Hydra run directory of its own."""
        self.calls += 1
        return [sys.executable, str(ROOT / "run.py"), "bench=sleep", "bench.params.seconds=0",
                "bench.trials=5", "tracking=server", f"tracking.experiment={self.experiment}",
                f"tracking.spool={spool}", f"hydra.run.dir={self.tmp}/run{self.calls}"]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def checked(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str], argv: list[str],
            out: str, err: str) -> None:
    """Raise SystemExit, with the child's output, when it did not exit 0."""
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(argv)}\n"
                         f"--- stdout\n{out}\n--- stderr\n{err}")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    """Run ``argv`` from the project root; return (wall s, stdout, stderr); fail loudly."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    checked(proc, argv, proc.stdout, proc.stderr)
    return wall, proc.stdout, proc.stderr


def run_id(argv: list[str], out: str) -> str:
    """The run id run.py printed (``[run <id> FINISHED]``)."""
    found = RUN_ID.findall(out)
    if len(found) != 1:
        raise SystemExit(f"expected one FINISHED run in the output of {' '.join(argv)}:\n{out}")
    return str(found[0])


def pending(spool: Path) -> list[Path]:
    """Journal directories of ``spool`` not synced yet."""
    if not spool.is_dir():
        return []
    return [d for d in spool.iterdir() if d.name != "synced" and (d / "journal.jsonl").is_file()]


def du(directory: Path) -> tuple[int, int, int]:
    """(apparent bytes, bytes on disk, files) of a directory tree."""
    size = disk = files = 0
    for path in directory.rglob("*"):
        st = path.lstat()
        disk += st.st_blocks * 512
        if path.is_file():
            size += st.st_size
            files += 1
    return size, disk, files


def online(bench: Bench, spool: Path) -> float:
    """One run against the server: its wall time (the spool must stay empty)."""
    argv = bench.run_argv(spool)
    wall, out, err = timed(argv, bench.env(bench.uri))
    if OFFLINE_WARNING in err or pending(spool):
        raise SystemExit(f"the online run went to the spool:\n{err}")
    bench.online_ids.append(run_id(argv, out))
    return wall


def offline(bench: Bench, spool: Path) -> tuple[float, tuple[int, int, int]]:
    """One run with the server unreachable: its wall time and the size of its journal."""
    argv = bench.run_argv(spool)
    wall, out, err = timed(argv, bench.env(f"http://127.0.0.1:{closed_port()}"))
    local = run_id(argv, out)
    if OFFLINE_WARNING not in err or not (spool / local / "journal.jsonl").is_file():
        raise SystemExit(f"the offline run {local} was not journaled in {spool}:\n{err}")
    bench.offline_ids.append(local)
    return wall, du(spool / local)


def sync(bench: Bench, spool: Path, expect: int) -> float:
    """``bench sync`` of ``spool`` to the server: its wall time (all ``expect`` uploaded)."""
    argv = [str(BIN / "bench"), "sync", "--spool", str(spool), "--uri", bench.uri]
    wall, out, err = timed(argv, bench.env(bench.uri))
    if f"{expect} uploaded, 0 left for later, 0 failed" not in out or pending(spool):
        raise SystemExit(f"sync did not upload {expect} run(s):\n{out}\n{err}")
    return wall


def concurrent(bench: Bench, drivers: int) -> tuple[float, float, list[str]]:
    """``drivers`` offline runs at once into one spool, then one sync.

    Returns
    -------
    tuple
        Wall s of all runs, wall s of the sync, the runs' spool ids.
    """
    spool = bench.tmp / "drivers-spool"
    env = bench.env(f"http://127.0.0.1:{closed_port()}")
    argvs = [bench.run_argv(spool) for _ in range(drivers)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT) for a in argvs]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    ids = []
    for proc, argv, (out, err) in zip(procs, argvs, outputs, strict=True):
        checked(proc, argv, out, err)
        ids.append(run_id(argv, out))
    if len(pending(spool)) != drivers:
        raise SystemExit(f"{drivers} drivers left {len(pending(spool))} journals in {spool}")
    return wall, sync(bench, spool, drivers), ids


def recorded(client: Any, exp_id: str, online_ids: list[str],
             spool_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The FINISHED runs of the experiment among these, by server id and by ``spool.id``."""
    runs = client.search_runs([exp_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=50_000)
    by_id = {r.info.run_id: r for r in runs if r.info.run_id in set(online_ids)}
    by_spool = {r.data.tags["spool.id"]: r for r in runs
                if r.data.tags.get("spool.id") in set(spool_ids)}
    return by_id, by_spool


def shape(client: Any, run: Any) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """What a run carries, beyond its values: param keys, metric keys, top-level artifacts."""
    artifacts = frozenset(a.path for a in client.list_artifacts(run.info.run_id))
    return frozenset(run.data.params), frozenset(run.data.metrics), artifacts


def row(name: str, values: list[float]) -> str:
    """A table row: median, min, max."""
    return f"| {name} | {len(values)} | {med(values):.2f} | {min(values):.2f} | {max(values):.2f} |"


def measure(bench: Bench, reps: int, drivers: int) -> str:
    """All the measurements; the Markdown body of the result."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=bench.uri)
    spool = bench.tmp / "spool"
    online(bench, spool)                                     # warm-up, not timed
    warm = bench.online_ids.pop()
    on: list[float] = []
    off: list[float] = []
    syn: list[float] = []
    sizes: list[tuple[int, int, int]] = []
    for i in range(reps):
        order = ["online", "offline"] if i % 2 == 0 else ["offline", "online"]
        for variant in order:
            if variant == "online":
                on.append(online(bench, spool))
            else:
                wall, size = offline(bench, spool)
                off.append(wall)
                sizes.append(size)
                syn.append(sync(bench, spool, 1))
        print(f"rep {i}: online {on[-1]:.2f} s, offline {off[-1]:.2f} s, "
              f"sync {syn[-1]:.2f} s", file=sys.stderr)
    both = [o + s for o, s in zip(off, syn, strict=True)]
    conc = concurrent(bench, drivers) if drivers else None

    exp = client.get_experiment_by_name(bench.experiment)
    if exp is None:
        raise SystemExit(f"no experiment {bench.experiment} on {bench.uri}")
    by_id, by_spool = recorded(client, exp.experiment_id, [warm, *bench.online_ids],
                               bench.offline_ids + (conc[2] if conc else []))
    reference = shape(client, by_id[warm]) if warm in by_id else None
    differ = [local for local, run in by_spool.items() if shape(client, run) != reference]
    on_rec = sum(r in by_id for r in bench.online_ids)
    off_rec = sum(r in by_spool for r in bench.offline_ids)

    runs = [f"| online | {len(bench.online_ids)} | {on_rec} | {len(bench.online_ids) - on_rec} |",
            f"| offline + sync | {len(bench.offline_ids)} | {off_rec} | "
            f"{len(bench.offline_ids) - off_rec} |"]
    if conc:
        conc_rec = sum(r in by_spool for r in conc[2])
        runs.append(f"| {drivers} concurrent offline + 1 sync | {drivers} | {conc_rec} | "
                    f"{drivers - conc_rec} |")
    blocks = [
        f"Server {bench.uri} (cluster/mlflow/: PostgreSQL backend), experiment "
        f"`{bench.experiment}`. Each run: `run.py bench=sleep bench.params.seconds=0 "
        "bench.trials=5 tracking=server` (one MLflow run, 5 no-op trials, config/results/log "
        "artifacts), a fresh process each time; offline = MLFLOW_TRACKING_URI on a closed local "
        "port, so the run is journaled in the spool, then `bench sync` uploads it. "
        f"{reps} repetition(s), alternating (order swapped every other one), after one untimed "
        "warm-up run.",
        "## Wall time (s)",
        "\n".join(["| variant | n | median | min | max |",
                   "| --- | ---: | ---: | ---: | ---: |",
                   row("online (run.py)", on),
                   row("offline (run.py, to the spool)", off),
                   row("sync (bench sync, 1 run)", syn),
                   row("offline + sync", both)]),
        f"Ratios of the medians: offline / online = {med(off) / med(on):.2f}; "
        f"(offline + sync) / online = {med(both) / med(on):.2f} (medians of the per-repetition "
        "sums).",
        "## Journal directory of one offline run (before sync)",
        "\n".join(["| file bytes median | min | max | on disk median | files |",
                   "| ---: | ---: | ---: | ---: | ---: |",
                   f"| {med([s[0] for s in sizes]):,.0f} | {min(s[0] for s in sizes):,} | "
                   f"{max(s[0] for s in sizes):,} | {med([s[1] for s in sizes]):,.0f} | "
                   f"{med([s[2] for s in sizes]):.0f} |"]),
        "## Runs on the server after sync (FINISHED in the experiment)",
        "\n".join(["| variant | started | recorded | lost |", "| --- | ---: | ---: | ---: |",
                   *runs]),
        f"Synced runs with other param keys, metric keys or top-level artifacts than the online "
        f"warm-up run: {len(differ)} of {len(by_spool)}.",
    ]
    if conc:
        blocks += [f"## {drivers} concurrent offline drivers, then one sync",
                   "\n".join(["| drivers | all runs wall s | sync wall s | total s "
                              "| sync s per run |",
                              "| ---: | ---: | ---: | ---: | ---: |",
                              f"| {drivers} | {conc[0]:.2f} | {conc[1]:.2f} | "
                              f"{conc[0] + conc[1]:.2f} | {conc[1] / drivers:.2f} |"])]
    return "\n\n".join(blocks)


def main() -> None:
    """Check the server, measure, print (and with ``--write`` save) the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                    "http://127.0.0.1:5055"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--drivers", type=int, default=0,
                    help="also K concurrent offline runs and one sync (0: skip)")
    ap.add_argument("--experiment", default="spool-bench")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--write", action="store_true", help="also write results/spool.md")
    args = ap.parse_args()
    require_server(args.uri)
    tmp = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    body = measure(Bench(args.uri, args.experiment, tmp), args.reps, args.drivers)
    if not args.keep:
        shutil.rmtree(tmp)
    print(f"{machine_line()}\n\n{body}")
    if args.write:
        print(f"\nwritten to {write_result('spool', body)}")


if __name__ == "__main__":
    main()
