"""Machines as data: every machine × filesystem composes and validates (or fails with the
expected one-line error), and the generated batch script / pod spec matches its golden file.

Re-record the golden files with ``BENCH_UPDATE_GOLDEN=1 pytest tests/config`` (a changed
file is written and its test fails once, for review).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from parsl_configs.render import render
from runners.config.schema import PROJECT_ROOT
from runners.config.validate import validate
from runners.errors import ConfigError
from tests.support import CONF, GOLDEN, check_golden, make

SUBMIT = GOLDEN / "submit"
#: Every machine and filesystem of conf/: a new machine YAML is tested without editing this
#: file (record its golden batch scripts with BENCH_UPDATE_GOLDEN=1).
MACHINES = sorted(p.stem for p in (CONF / "machine").glob("*.yaml"))
FILESYSTEMS = sorted(p.stem for p in (CONF / "fs").glob("*.yaml"))
# What the machines of the seeds offer (the mpi4py-import matrix for Cori and Edison);
# shifter = needs an image.
OFFERS = {
    "local": {"tmpfs", "scratch"},
    "docker-slurm": {"tmpfs", "scratch"},
    "cori": {"common", "datawarp", "project", "scratch", "tmpfs", "shifter"},
    "edison": {"common", "project", "scratch", "tmpfs", "shifter"},
    "perlmutter": {"common", "project", "scratch", "tmpfs"},
    "theta": {"project", "tmpfs", "common"},
    "polaris": {"project", "scratch", "tmpfs"},
    "kind": {"tmpfs", "scratch"},
}


@pytest.fixture(autouse=True)
def _stable_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NERSC_ACCOUNT", "ALCF_ACCOUNT", "BENCH_SCRATCH", "BENCH_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "bench")


def normalise(text: str) -> str:
    """Replace this checkout's paths, so golden files hold on any machine."""
    return text.replace(sys.prefix, "<venv>").replace(str(PROJECT_ROOT), "<project>")


def offered(machine: str) -> dict[str, dict[str, object]]:
    """The filesystems a machine's YAML declares, as data."""
    import yaml

    data = yaml.safe_load((CONF / "machine" / f"{machine}.yaml").read_text())
    return dict(data.get("filesystems") or {})


def test_every_machine_and_filesystem_is_found() -> None:
    assert {"local", "docker-slurm", "cori", "edison", "theta", "polaris", "kind"} <= set(
        MACHINES)
    assert {"tmpfs", "scratch", "project", "common", "datawarp", "shifter"} <= set(FILESYSTEMS)


@pytest.mark.parametrize("machine", sorted(OFFERS))
def test_the_seeds_matrix(machine: str) -> None:
    """The filesystems the seeds' machines offer, as their YAML files say."""
    assert set(offered(machine)) == OFFERS[machine]


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_machine_fs_combination(machine: str, fs: str) -> None:
    """Every machine x filesystem composes; one the machine does not offer, or offers only
    with an image, fails with its one-line error; the batch script matches its golden file."""
    launcher = make(f"machine={machine}").machine.launcher
    bench = "bench=parsl_perf" if launcher == "none" else "bench=mpi4py_import"
    cfg = make(f"machine={machine}", f"fs={fs}", bench, "bench.ranks=2")
    offers = offered(machine)
    if fs not in offers:
        with pytest.raises(ConfigError, match=f"fs={fs} is not offered by machine={machine}"):
            validate(cfg)
        return
    if offers[fs].get("supported", True) is False:
        with pytest.raises(ConfigError, match=f"set machine.filesystems.{fs}.image"):
            validate(cfg)
        cfg = make(f"machine={machine}", f"fs={fs}", bench, "bench.ranks=2",
                   f"machine.filesystems.{fs}.image=docker:bench/mpi4py-import:1")
    validate(cfg)
    text = normalise(render(cfg.machine, fs).text)
    check_golden(SUBMIT / f"{machine}__{fs}.txt", text)


#: Machines with batch scripts and their node-local filesystems, on 4 nodes.
NODE_LOCAL = sorted((m, fs) for m in MACHINES for fs, spec in offered(m).items()
                    if spec.get("scope") == "node" and m not in ("local", "kind"))


def test_every_filesystem_of_every_machine_says_its_scope() -> None:
    """tmpfs and node NVMe are node-local; the rest shared; no YAML leaves it out."""
    scopes = {(m, fs): spec.get("scope") for m in MACHINES for fs, spec in offered(m).items()}
    assert all(s in ("node", "shared") for s in scopes.values()), scopes
    assert all(scopes[m, "tmpfs"] == "node" for m in MACHINES if (m, "tmpfs") in scopes)
    assert scopes["polaris", "scratch"] == "node" and scopes["cori", "scratch"] == "shared"
    assert scopes["cori", "datawarp"] == "shared" and scopes["cori", "common"] == "shared"


def test_a_scope_that_is_neither_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"scope='nodes' is unknown; valid: node, shared"):
        validate(make("machine=cori", "fs=tmpfs", "machine.filesystems.tmpfs.scope=nodes"))


@pytest.mark.parametrize(("machine", "fs"), NODE_LOCAL)
def test_a_node_local_filesystem_on_four_nodes_is_staged_on_each(machine: str, fs: str) -> None:
    """The batch script and the dry run say the environment is staged on every node."""
    cfg = make(f"machine={machine}", f"fs={fs}", "bench=mpi4py_import", "machine.nodes=4",
               "bench.ranks=2")
    kind = validate(cfg)
    text = normalise(render(cfg.machine, fs).text)
    check_golden(SUBMIT / f"{machine}__{fs}__4nodes.txt", text)
    assert "staged on each of the 4 nodes" in text
    plan = "\n".join(kind.plan(Path("/out")))
    assert "stage   on each of the 4 nodes" in plan and "warmup  on each node" in plan
    one = validate(make(f"machine={machine}", f"fs={fs}", "bench=mpi4py_import",
                        "machine.nodes=1", "bench.ranks=1"))
    assert "stage   once (node-local, one node)" in "\n".join(one.plan(Path("/out")))


def test_a_shared_filesystem_is_staged_once_whatever_the_nodes() -> None:
    cfg = make("machine=cori", "fs=scratch", "bench=mpi4py_import", "machine.nodes=4")
    plan = "\n".join(validate(cfg).plan(Path("/out")))
    assert "stage   once (shared)" in plan and "each node" not in plan
    assert "staged on each" not in render(cfg.machine, "scratch").text


def test_per_node_prefix_of_each_launcher() -> None:
    from runners.stages.launch import per_node_prefix

    assert per_node_prefix(make("machine=cori", "machine.nodes=4").machine) == [
        "srun", "--mpi=none", "--kill-on-bad-exit=1", "-N", "4", "-n", "4", "--ntasks-per-node=1"]
    assert per_node_prefix(make("machine=theta").machine) == ["aprun", "-n", "2", "-N", "1"]
    assert per_node_prefix(make("machine=polaris", "machine.nodes=3").machine) == [
        "mpiexec", "-n", "3", "--ppn", "1"]
    assert per_node_prefix(make("machine=cori").machine) is None


def test_datawarp_adds_the_jobdw_directive_only_for_datawarp() -> None:
    with_dw = render(make("machine=cori", "fs=datawarp").machine, "datawarp").text
    without = render(make("machine=cori", "fs=scratch").machine, "scratch").text
    assert "#DW jobdw capacity=10GB access_mode=striped type=scratch" in with_dw
    assert "#DW" not in without
    assert make("machine=cori").machine.filesystems.datawarp.path.startswith("$DW_JOB_STRIPED")


def test_cori_knl_and_perlmutter_gpu_by_constraint() -> None:
    knl = render(make("machine=cori", "machine.constraint=knl").machine).text
    assert "#SBATCH --constraint=knl" in knl
    gpu = render(make("machine=perlmutter", "machine.constraint=gpu",
                      "machine.gpus_per_node=4").machine).text
    assert "#SBATCH --constraint=gpu" in gpu and "#SBATCH --gpus-per-node=4" in gpu
    with pytest.raises(ConfigError, match="valid: haswell, knl"):
        validate(make("machine=cori", "machine.constraint=gpu"))


def test_submit_commands_are_recorded_not_run() -> None:
    theta = render(make("machine=theta").machine)
    assert theta.commands == [
        "qsub -n 2 -q debug-cache-quad -t 30 -A datascience "
        "<run_dir>/submit_scripts/parsl.bench.block-0.<time>.submit"]
    slurm = render(make("machine=docker-slurm").machine)
    assert slurm.commands[-1] == "sbatch <run_dir>/submit_scripts/bench.block-0.<time>"


@pytest.mark.parametrize(("overrides", "expected"), [
    (["machine=theta", "bench.ranks=129"], "exceeds machine=theta's 2 node(s) x 64"),
    (["machine=edison", "fs=datawarp"], "valid for edison: common, project, scratch"),
    (["machine=kind"], "needs an MPI launcher"),
])
def test_machine_validation(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate(make(*overrides))


def test_launchers_per_machine() -> None:
    def argv(machine: str) -> list[str]:
        kind = validate(make(f"machine={machine}", "bench.ranks=4"))
        return list(kind.commands("/e")[0].argv[:9])

    assert argv("cori")[:7] == ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", "-N", "1", "-n",
                                "4"]
    assert argv("theta")[:5] == ["aprun", "-n", "4", "-N", "4"]
    assert argv("polaris")[:9] == ["mpiexec", "-n", "4", "--ppn", "4", "--depth", "1",
                                   "--cpu-bind", "depth"]
    assert argv("local")[:3] == ["/e/bin/mpiexec", "-n", "4"]


def test_block_failure_reads_the_schedulers_reason(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from parsl_configs.diagnose import block_failure

    err = tmp_path / "job.stderr"
    err.write_text("slurmstepd: error: *** JOB 42 ON vm CANCELLED AT 2026-11-21T06:00:01 "
                   "DUE TO TIME LIMIT ***\n")
    ex = SimpleNamespace(provider=SimpleNamespace(resources={
        "42": {"job_stderr_path": str(err), "job_stdout_path": str(tmp_path / "none")}}))
    kind, reason = block_failure(ex) or ("", "")
    assert kind == "walltime" and "batch job 42 exceeded its walltime" in reason
    err.write_text("=>> PBS: job killed: walltime 1830 exceeded limit 1800\n")
    assert (block_failure(ex) or ("",))[0] == "walltime"
    err.write_text("all fine\n")
    assert block_failure(ex) is None
    assert block_failure(SimpleNamespace(provider=None)) is None


def test_slurm_verdict_reads_scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scontrol answers as recorded from Slurm 22.05 for a job that hit its time limit."""
    from parsl_configs.schedulers.slurm import job_verdict as slurm_job_verdict

    fake = tmp_path / "scontrol"
    answers = {"7": "JobId=7 JobName=x JobState=COMPLETING Reason=TimeLimit Dependency=(null) "
                    "TimeLimit=00:01:00",
               "8": "JobId=8 JobName=x JobState=TIMEOUT Reason=TimeLimit TimeLimit=00:01:00",
               "9": "JobId=9 JobName=x JobState=COMPLETED Reason=None TimeLimit=00:10:00",
               "10": "JobId=10 JobName=x JobState=NODE_FAIL Reason=NodeDown TimeLimit=00:10:00 "
                     "NodeList=node[1-2]",
               "12": "JobId=12 JobName=x JobState=RUNNING Reason=None TimeLimit=00:01:00 "
                     "StartTime=2026-01-01T00:00:00 EndTime=2026-01-01T00:01:00",
               "13": "JobId=13 JobName=x JobState=RUNNING Reason=None TimeLimit=00:01:00 "
                     "StartTime=2099-01-01T00:00:00 EndTime=2099-01-01T00:01:00"}
    fake.write_text("#!/bin/sh\ncase \"$4\" in\n" + "".join(
        f"  {k}) echo '{v}';;\n" for k, v in answers.items()) + "esac\n")
    fake.chmod(0o755)
    sinfo = tmp_path / "sinfo"        # as Slurm 22.05 answers -N -o '%N|%T|%E'
    sinfo.write_text("#!/bin/sh\necho 'node1|mixed|none'\necho 'node2|down|Not responding'\n")
    sinfo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for job in ("7", "8", "12"):
        kind, reason = slurm_job_verdict(job, wait_s=1) or ("", "")
        assert kind == "walltime" and "00:01:00" in reason
    assert slurm_job_verdict("9", wait_s=1) is None
    assert slurm_job_verdict("13", wait_s=1) is None      # running, within its time
    kind, reason = slurm_job_verdict("10", wait_s=1) or ("", "")
    assert kind == "node_lost" and "node2 down: Not responding" in reason
    assert "node1" not in reason                          # the node that is fine
    assert slurm_job_verdict("11", wait_s=1) is None       # Slurm no longer knows it
