"""Real multi-node runs on the 4-node local Slurm cluster: ranks on several hosts, an
environment staged on every node of a node-local filesystem (and only once on a shared
one), per-node summaries, a rank that cannot start, a drained node, the placement of OSU's
ranks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import ROOT, SLURM, RunPy, Store, child_env

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]


def slurm_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {SLURM}/env.sh && echo $SLURM_CONF"],
                         capture_output=True, text=True, check=True)
    return dict(os.environ, SLURM_CONF=out.stdout.strip())


def srun(*argv: str, nodes: int = 4) -> list[str]:
    """One task per node; its output lines, sorted."""
    out = subprocess.run(["srun", "-N", str(nodes), "-n", str(nodes), "--ntasks-per-node=1",
                          *argv], capture_output=True, text=True, env=slurm_env(), timeout=120,
                         check=True)
    return sorted(out.stdout.split("\n"))[1:] if out.stdout.endswith("\n") else sorted(
        out.stdout.split("\n"))


def test_four_nodes_with_their_own_hostname_and_dev_shm() -> None:
    status = subprocess.run(["bash", str(SLURM / "status.sh")], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert [f"node{k}" in status for k in range(1, 5)] == [True] * 4
    assert status.count(": idle") == 4 and "4 node(s) usable" in status
    mark = f"/dev/shm/bench-test-{uuid.uuid4().hex[:8]}"
    seen = srun("bash", "-c", f"touch {mark}-$(hostname); echo $(hostname) $(ls -d {mark}-*)")
    assert seen == [f"node{k} {mark}-node{k}" for k in range(1, 5)]   # each sees its own only
    srun("bash", "-c", f"rm -f {mark}-*")
    assert not list(Path("/dev/shm").glob(f"{Path(mark).name}-*"))     # the host sees none


def read_csv(store: Store, run_id: str, name: str, tmp_path: Path) -> list[dict[str, str]]:
    local = store.client().download_artifacts(run_id, f"results/{name}", str(tmp_path))
    with open(local) as fh:
        return list(csv.DictReader(fh))


def test_mpi4py_import_on_1_2_and_4_nodes_on_tmpfs_and_scratch(
        run_py: RunPy, store: Store, tmp_path: Path) -> None:
    """One rank per node; tmpfs (node-local) is staged on every node, scratch once."""
    shm = f"/dev/shm/bench-nodes-{uuid.uuid4().hex[:8]}"
    run_py("-m", "machine=docker-slurm", "machine.nodes=1,2,4", "machine.ranks_per_node=1",
           "bench.ranks=${machine.nodes}", "fs=tmpfs,scratch", "bench.trials=1",
           "bench.strace=false", f"machine.filesystems.tmpfs.path={shm}",
           f"machine.filesystems.scratch.path={tmp_path}/scratch", *store.overrides(),
           f"hydra.sweep.dir={tmp_path}/m", check=True, timeout=900)
    runs = [r for r in store.runs() if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        nodes, fs = int(p["machine.nodes"]), p["fs.name"]
        rows = read_csv(store, run.info.run_id, "per_rank.csv", tmp_path / run.info.run_id)
        hosts = {row["host"] for row in rows}       # Slurm picks which nodes
        assert len(hosts) == nodes == len(rows) and hosts <= {f"node{k}" for k in range(1, 5)}
        assert m["nodes_seen"] == nodes and m["slowest_node_s"] >= m["fastest_node_s"]
        assert m["node_spread_s"] == pytest.approx(m["slowest_node_s"] - m["fastest_node_s"])
        per_node = read_csv(store, run.info.run_id, "per_node.csv", tmp_path / run.info.run_id)
        assert {row["host"] for row in per_node} == hosts
        assert t["launch.nodes"] == str(nodes)
        if fs == "tmpfs" and nodes > 1:
            # The jobs of the sweep share the directory: a node another job staged first
            # is current (skipped) for the next.
            assert m["stage.nodes"] == nodes and 0 <= m["stage.copied"] <= nodes
            assert t["stage.mode"] in ("per-node tar", "per-node current",
                                       "per-node current+tar")
            assert t["stage.hosts"] == ",".join(sorted(hosts))
            for host in hosts:
                assert m[f"stage.node.{host}_s"] > 0
            assert m["stage.node.max_s"] >= m["stage.node.min_s"]
            assert "--ntasks-per-node=1" in t["warmup.nodes"]
        else:
            assert "stage.nodes" not in m and not any(k.startswith("stage.node.") for k in m)
    # Every node holds its own copy of the environment on its own /dev/shm.
    assert srun("bash", "-c", f"echo $(hostname) $(ls -d {shm}/mpi4py-import-*/ | wc -l); "
                f"rm -rf {shm}") == [f"node{k} 1" for k in range(1, 5)]
    assert not Path(shm).exists()


def test_a_rank_that_cannot_start_ends_the_step_at_once(run_py: RunPy, store: Store) -> None:
    """tmpfs declared shared by mistake: staged on node1 only, node2's rank cannot exec its
    Python. srun ends the step at once (not after bench.timeout_s), the run FAILED with
    Slurm's line as its cause."""
    shm = f"/dev/shm/bench-nodes-{uuid.uuid4().hex[:8]}"
    proc = run_py("machine=docker-slurm", "machine.nodes=2", "machine.ranks_per_node=1",
                  "bench.ranks=2", "fs=tmpfs", "machine.filesystems.tmpfs.scope=shared",
                  f"machine.filesystems.tmpfs.path={shm}", "bench.trials=1",
                  "bench.strace=false", "bench.timeout_s=240", *store.overrides(), timeout=600)
    assert proc.returncode == 1, proc.stderr
    [run] = store.runs()
    tags = run.data.tags
    assert run.info.status == "FAILED" and tags["failure.kind"] == "error", tags
    assert "No such file or directory" in tags["failure.message"], tags["failure.message"]


def test_a_drained_node_is_left_out_and_the_run_finishes_with_telemetry_per_node(
        run_py: RunPy, store: Store) -> None:
    env = slurm_env()
    subprocess.run(["scontrol", "update", "NodeName=node3", "State=DRAIN", "Reason=bench-test"],
                   env=env, check=True, timeout=30)
    try:
        run_py("machine=docker-slurm", "machine.nodes=3", "machine.ranks_per_node=1",
               "bench.ranks=3", "fs=scratch", "bench.trials=2", "bench.strace=false",
               "telemetry.enabled=true", "telemetry.interval_s=0.5", *store.overrides(),
               check=True, timeout=600)
    finally:
        subprocess.run(["scontrol", "update", "NodeName=node3", "State=RESUME"], env=env,
                       check=True, timeout=30)
    [run] = store.runs()
    assert run.info.status == "FINISHED" and run.data.metrics["nodes_seen"] == 3
    # One sampler per node of the allocation (node3 is not in it).
    sampled = {k.split(".")[1] for k in run.data.metrics if k.endswith(".cpu_pct_mean")}
    assert sampled == {"node1", "node2", "node4"} and run.data.metrics["telemetry.nodes"] == 3


def test_osu_between_two_nodes_and_within_one(run_py: RunPy, store: Store) -> None:
    """The same pair of ranks on two nodes and on one: the runs say which is which."""
    for nodes, per_node in ((2, 1), (1, 2)):
        run_py("machine=docker-slurm", "bench=osu", "bench.tests=[latency]",
               "bench.max_size=8", "bench.trials=1", f"machine.nodes={nodes}",
               f"machine.ranks_per_node={per_node}", "bench.ranks=2", *store.overrides(),
               check=True, timeout=600)
    runs = {r.data.tags["launch.placement"]: r for r in store.runs("osu")}
    assert set(runs) == {"inter-node", "intra-node"}
    assert runs["inter-node"].data.tags["launch.nodes"] == "2"
    assert runs["intra-node"].data.tags["launch.nodes"] == "1"
    for run in runs.values():
        history = store.client().get_metric_history(run.info.run_id, "osu_latency")
        assert sorted(m.step for m in history) == [1, 2, 4, 8]


def test_a_node_lost_mid_run_fails_it_node_lost_and_the_next_run_goes_on(
        store: Store, tmp_path: Path, run_py: RunPy,
        fault_report: Callable[[str, int, int, int], None]) -> None:
    """A node of a running 2-node job goes DOWN: the run ends FAILED ``node_lost`` naming
    the node with Slurm's reason, its completed trials stay logged, its block is gone, and
    the next run finishes on the remaining nodes."""
    env = slurm_env()
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "run.py"), "machine=docker-slurm", "machine.nodes=2",
            "machine.ranks_per_node=1", "bench.ranks=2", "fs=scratch", "bench.trials=1000",
            "bench.strace=false", *store.overrides(), f"hydra.run.dir={out}"]
    proc = subprocess.Popen(argv, env=child_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lost_node = ""
    try:
        deadline = time.monotonic() + 300
        while not (out / "stages" / "bench" / "trial-5.stdout.log").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.5)
        nodelist = subprocess.run(["squeue", "-h", "-o", "%N"], env=env, text=True,
                                  capture_output=True, check=True).stdout.split()[0]
        lost_node = subprocess.run(["scontrol", "show", "hostnames", nodelist], env=env,
                                   text=True, capture_output=True,
                                   check=True).stdout.split()[-1]
        subprocess.run(["scontrol", "update", f"NodeName={lost_node}", "State=DOWN",
                        "Reason=bench-test: lost mid-run"], env=env, check=True, timeout=30)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        [run] = store.runs()
        tags = run.data.tags
        assert run.info.status == "FAILED" and tags["failure.kind"] == "node_lost", tags
        assert f"{lost_node} down" in tags["failure.message"]
        assert "bench-test: lost mid-run" in tags["failure.message"]
        assert "Traceback" not in err, err
        logged = len(store.client().get_metric_history(run.info.run_id, "total_s"))
        completed = sum(log.read_text().count("rank_total_s") == 2
                        for log in (out / "stages" / "bench").glob("trial-*.stdout.log"))
        assert logged >= 1
        assert subprocess.run(["squeue", "-h"], env=env, text=True, capture_output=True,
                              check=True).stdout == ""
        # The next run goes on with the nodes that are left.
        run_py("machine=docker-slurm", "machine.nodes=2", "machine.ranks_per_node=1",
               "bench.ranks=2", "fs=scratch", "bench.trials=1", "bench.strace=false",
               *store.overrides(), check=True, timeout=600)
        after = [r for r in store.runs() if r.info.run_id != run.info.run_id]
        assert [r.info.status for r in after] == ["FINISHED"]
        assert lost_node not in after[0].data.tags.get("stage.hosts", "")
        fault_report("a node lost mid-run (2-node job)", 2, len(store.runs()),
                     completed - logged)
    finally:
        if proc.poll() is None:
            proc.kill()
        if lost_node:
            subprocess.run(["scontrol", "update", f"NodeName={lost_node}", "State=RESUME"],
                           env=env, check=True, timeout=30)
