"""Unit tier: stage helpers, the result contract, measurement, launchers, param flattening."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runners.config.schema import MachineConfig
from runners.stages.base import StageError, StageResult
from runners.stages.env import spec_hash, stage_env
from runners.stages.launch import launch_prefix
from runners.stages.measure import host_snapshot, kill_tree, run_measured, tail
from runners.stages.node_copy import MARKER, fix_activate
from runners.stages.results import ResultParseError, parse_line, parse_output
from runners.stages.warmup import import_code, parse_strace_summary
from runners.tracking.store import flatten
from tests.support import DATA

STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 52.10    0.001234           5       224        31 openat
 30.00    0.000700           3       198           newfstatat
 17.90    0.000400           2       150           fstat
------ ----------- ----------- --------- --------- ----------------
100.00    0.002334           4       572        31 total
"""


def test_parse_strace_summary_counts_calls_and_errors() -> None:
    counts = parse_strace_summary(STRACE_C)
    assert counts == {"openat": 224, "newfstatat": 198, "fstat": 150, "total": 572,
                      "errors": 31}


def test_spec_hash_changes_only_with_the_spec() -> None:
    a = spec_hash("name: x\npackages: [numpy]\n")
    assert a == spec_hash("name: x\npackages: [numpy]\n")
    assert a != spec_hash("name: x\npackages: [numpy, scipy]\n")


def test_fix_activate_rewrites_only_the_virtual_env_line(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    act = tmp_path / "bin" / "activate"
    act.write_text('deactivate () {\n  :\n}\nVIRTUAL_ENV="/old/place"\nexport VIRTUAL_ENV\n'
                   'PATH="$VIRTUAL_ENV/bin:$PATH"\n')
    fix_activate(tmp_path)
    text = act.read_text()
    assert f'VIRTUAL_ENV="{tmp_path}"' in text and "/old/place" not in text
    assert 'PATH="$VIRTUAL_ENV/bin:$PATH"' in text and "export VIRTUAL_ENV" in text


def _fake_env(root: Path) -> StageResult:
    env = root / "built" / "demo-abc"
    (env / "bin").mkdir(parents=True)
    (env / "lib" / "__pycache__").mkdir(parents=True)
    (env / "bin" / "activate").write_text(f'VIRTUAL_ENV="{env}"\n')
    (env / "lib" / "mod.py").write_text("x = 1\n")
    (env / "lib" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (env / MARKER).write_text('{"hash": "abc"}')
    return StageResult("env", 0.0, data={"env_dir": str(env)})


def test_stage_env_rsyncs_without_pyc_then_skips_when_current(tmp_path: Path) -> None:
    env = _fake_env(tmp_path)
    first = stage_env(env, str(tmp_path / "fs"), str(tmp_path / "logs"))
    dst = Path(first.data["env_dir"])
    assert dst == tmp_path / "fs" / "demo-abc"
    assert first.tags["stage.mode"] == "rsync" and first.metrics["stage.copied"] == 1.0
    assert (dst / "lib" / "mod.py").read_text() == "x = 1\n"
    assert not list(dst.rglob("*.pyc"))
    assert (dst / "bin" / "activate").read_text() == f'VIRTUAL_ENV="{dst}"\n'
    second = stage_env(env, str(tmp_path / "fs"), str(tmp_path / "logs"))
    assert second.tags["stage.mode"] == "current" and second.metrics["stage.copied"] == 0.0
    (Path(env.data["env_dir"]) / MARKER).write_text('{"hash": "new"}')
    third = stage_env(env, str(tmp_path / "fs"), str(tmp_path / "logs"))
    assert third.tags["stage.mode"] == "rsync"


def test_stage_env_onto_its_own_place_is_a_no_op(tmp_path: Path) -> None:
    env = _fake_env(tmp_path)
    res = stage_env(env, str(tmp_path / "built"), str(tmp_path / "logs"))
    assert res.tags["stage.mode"] == "in-place" and res.data["env_dir"] == env.data["env_dir"]


def test_stage_env_with_an_unset_variable_fails_clearly(tmp_path: Path) -> None:
    env = _fake_env(tmp_path)
    os.environ.pop("DW_JOB_STRIPED", None)
    with pytest.raises(StageError, match="not set on this node"):
        stage_env(env, "$DW_JOB_STRIPED/envs", str(tmp_path / "logs"))


def test_stage_error_survives_pickling() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(StageError("warmup", "sanity", "no numpy", ["a.log"])))
    assert (err.stage, err.kind, err.message, err.logs) == ("warmup", "sanity", "no numpy",
                                                            ["a.log"])


def test_import_code_imports_without_initialising_mpi() -> None:
    code = import_code(["json", "os.path"])
    assert "mpi4py.rc.initialize = False" in code
    assert "importlib.import_module('os.path')" in code


def test_run_measured_records_time_memory_and_cpu(tmp_path: Path) -> None:
    """The measured wall time holds the program's own busy loop and lies within the time
    the call took; memory and CPU are the program's."""
    code = ("import time; b = bytearray(60 * 2**20); t = time.perf_counter()\n"
            "while time.perf_counter() - t < 0.4: pass\n"
            "print(time.perf_counter() - t)")
    t0 = time.perf_counter()
    m = run_measured([sys.executable, "-c", code], tmp_path / "o", tmp_path / "e", 30)
    outer = time.perf_counter() - t0
    assert m.returncode == 0 and not m.timed_out
    assert float((tmp_path / "o").read_text()) <= m.wall_s <= outer
    assert m.peak_rss_mb > 50
    assert m.cpu_user_s + m.cpu_system_s > 0.2
    assert m.host_before["cores_logical"] >= 1 and "load1" in m.host_after


def test_run_measured_kills_the_whole_tree_on_timeout(tmp_path: Path) -> None:
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(p.pid, flush=True)\ntime.sleep(60)")
    m = run_measured([sys.executable, "-c", code], tmp_path / "o", tmp_path / "e", 1.0)
    assert m.timed_out and m.returncode < 0      # killed by a signal, not run to its end
    grandchild = int((tmp_path / "o").read_text().split()[0])
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"


def test_killing_a_tree_leaves_the_exit_status_to_the_popen_that_waits_for_it() -> None:
    # run_measured's timer kills while Popen.wait() waits: had the kill collected the
    # status, a timed-out trial would be recorded with return code 0.
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    kill_tree(popen.pid, grace_s=5, reap=False)
    assert popen.wait(timeout=10) == -signal.SIGTERM


def test_tail_keeps_undecodable_bytes(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"first\n\xff\xfe broken\n")
    assert tail(tmp_path / "log") == "\ufffd\ufffd broken"


def test_host_snapshot_has_the_recorded_fields() -> None:
    snap = host_snapshot()
    assert set(snap) == {"cores_logical", "cores_physical", "mem_total_gb", "mem_available_gb",
                         "load1", "load5", "load15", "cpu_freq_mhz"}


def test_result_contract_accepts_full_and_minimal_lines() -> None:
    r = parse_line('{"name": "lat", "value": 1.5, "unit": "us", "direction": "lower", '
                   '"step": 8, "tags": {"rank": 0}}')
    assert (r.name, r.value, r.unit, r.direction, r.step, r.tags) == (
        "lat", 1.5, "us", "lower", 8, {"rank": 0})
    assert parse_line(r.to_json()) == r
    assert parse_line('{"name": "x", "value": 3}').direction == "lower"


@pytest.mark.parametrize("line", [
    '{"name": "x"}', '{"value": 1}', '{"name": "x", "value": "fast"}',
    '{"name": "x", "value": 1, "direction": "up"}', '{"name": "x", "value": 1, "step": 1.5}',
    '{"name": "x", "value": NaN}', '{broken', '["name", 1]',
])
def test_result_contract_rejects_bad_lines(line: str) -> None:
    with pytest.raises(ResultParseError):
        parse_line(line)


def test_parse_output_skips_prose_and_requires_results() -> None:
    out = "hello\n" + json.dumps({"name": "a", "value": 1}) + "\nbye\n"
    assert [r.name for r in parse_output(out)] == ["a"]
    with pytest.raises(ResultParseError, match="no JSON result lines"):
        parse_output("just prose\n")


def test_launch_prefix_per_launcher() -> None:
    m = MachineConfig(name="m", env_root="", launcher="mpiexec", nodes=1, ranks_per_node=4,
                      mpiexec="{env}/bin/mpiexec")
    assert launch_prefix(m, 2, "/e") == ["/e/bin/mpiexec", "-n", "2"]
    m.launcher, m.nodes = "srun", 4
    assert launch_prefix(m, 6, "/e") == ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", "-N", "2",
                                         "-n", "6"]
    m.launcher = "aprun"
    assert launch_prefix(m, 6, "/e") == ["aprun", "-n", "6", "-N", "4"]


def test_flatten_makes_dotted_params() -> None:
    flat = flatten({"bench": {"ranks": 2, "packages": ["numpy"]}, "x": None})
    assert flat == {"bench.ranks": "2", "bench.packages": '["numpy"]', "x": "None"}
    assert len(flatten({"long": "y" * 10000})["long"]) == 6000


def test_parse_parsl_perf_on_recorded_output() -> None:
    from runners.kinds.parsl_perf import parse_parsl_perf

    text = (DATA / "parsl_perf_output.txt").read_text()
    results = parse_parsl_perf(text)
    rates = [r for r in results if r.name == "tasks_per_s"]
    assert [r.step for r in rates] == [1, 2, 3, 4]
    assert [r.value for r in rates] == [1.685, 275.349, 769.694, 738.817]
    assert {r.name for r in results if r.step == 3} == {
        "tasks", "submit_tasks_per_s", "runtime_s", "tasks_per_s"}
    final = [r for r in results if r.name == "tasks_per_s_final"]
    assert len(final) == 1 and final[0].value == 738.817 and final[0].step is None
    assert final[0].direction == "higher"
    with pytest.raises(ResultParseError, match="Tasks per second"):
        parse_parsl_perf("==== Iteration 1 ====\nWill run 10 tasks\n")


def test_progress_draws_only_on_a_terminal() -> None:
    import io

    from runners.run.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        bar = Progress(4, "trials", stream)
        bar.update(done=1, note="stage: bench")
        bar.close()
    assert quiet.getvalue() == ""
    assert "[#####---------------] 1/4 trials  stage: bench" in tty.getvalue()
    assert "ETA" in tty.getvalue()


def test_where_names_the_batch_job_of_any_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage tags its host and, inside an allocation, the job's id: the machine's own
    scheduler's variable first, any other's too (machine=local inside an salloc)."""
    from parsl_configs.scheduler import job_id_vars
    from runners.stages.base import where

    for var in ("SLURM_JOB_ID", "PBS_JOBID", "COBALT_JOBID"):
        monkeypatch.delenv(var, raising=False)
    assert "scheduler.job_id" not in where(job_id_vars("local"))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert where(job_id_vars("local"))["scheduler.job_id"] == "4242"
    monkeypatch.setenv("PBS_JOBID", "77.polaris")
    assert where(job_id_vars("pbspro"))["scheduler.job_id"] == "77.polaris"
    assert where(job_id_vars("slurm"))["scheduler.job_id"] == "4242"


def test_a_failures_cause_is_its_telling_line_and_its_last(tmp_path: Path) -> None:
    from runners.stages.measure import cause

    log = tmp_path / "err.log"
    log.write_text("srun: error: node2: task 1: Exited with exit code 2\n"
                   "slurmstepd-node2: error: execve(): /dev/shm/e/bin/python: No such file or "
                   "directory\nsrun: Force Terminated StepId=99.0\n")
    assert cause(log) == ("slurmstepd-node2: error: execve(): /dev/shm/e/bin/python: No such "
                          "file or directory | srun: Force Terminated StepId=99.0")
    log.write_text("warming up\nsegfault\n")
    assert cause(log) == "segfault"
    log.write_text("")
    assert cause(log) == ""


def test_the_warmup_writes_bytecode_even_where_the_shell_says_not_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHONDONTWRITEBYTECODE (set on many CI hosts) must not stop the warm-up from doing
    its job: otherwise every trial compiles the suite again."""
    from runners.stages.warmup import warmup

    pkg = tmp_path / "site" / "bytecode_probe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    staged = StageResult("stage", 0.0, data={"env_dir": sys.prefix})
    res = warmup(staged, ["bytecode_probe"], str(tmp_path / "logs"), use_strace=False)
    assert "bytecode_probe" in res.tags["warmup.module_files"]
    assert list((pkg / "__pycache__").glob("__init__.*.pyc"))


def test_a_current_copy_needs_no_rsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fake_env(tmp_path)
    stage_env(env, str(tmp_path / "fs"), str(tmp_path / "logs"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))     # rsync is not found now
    again = stage_env(env, str(tmp_path / "fs"), str(tmp_path / "logs"))
    assert again.tags["stage.mode"] == "current"
