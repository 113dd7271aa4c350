"""Tests for :mod:`parsl_configs.schedulers.cobalt` against a recorded fake of Cobalt's CLI.

The fake ``qsub``/``qstat``/``qdel`` in ``tests/fake_cobalt`` keep their jobs in a JSON
state file and record every command line.  Their directory goes first on ``PATH`` only
through ``monkeypatch`` inside these tests.

Re-record the golden submit script with ``BENCH_UPDATE_GOLDEN=1 pytest
tests/unit/test_cobalt_provider.py`` (a changed file is written and the test fails once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from parsl.jobs.states import JobState
from parsl.providers.errors import SubmitException

from parsl_configs.schedulers import cobalt
from parsl_configs.schedulers.cobalt import CobaltProvider
from tests.support import TESTS, check_golden

FAKE_BIN = TESTS / "fake_cobalt"
GOLDEN = TESTS / "golden" / "cobalt_submit_script.sh"
FROZEN_TIME = 1700000000.0
JOB_NAME = f"parsl.parsl.htex.block-0.{FROZEN_TIME}"
WORKER_CMD = ("process_worker_pool.py --debug --max_workers_per_node=64 -a 10.236.1.195 "
              "-p 0 -c 1.0 -m None --poll 10 --task_port=54321 --result_port=54322 "
              "--logdir=/lus/theta-fs0/projects/MyProject/runinfo/000/htex "
              "--block_id=0 --hb_period=30 --hb_threshold=120")


class FakeCobalt:
    """Handle on the fake scheduler's state file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """Return the whole state (empty dict before the first command)."""
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self, state: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(state, indent=1))

    def calls(self, command: str) -> list[list[str]]:
        """Recorded argv lists of ``command`` (qsub, qstat or qdel)."""
        return [argv for argv in self.load().get("calls", []) if argv[0] == command]

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.load()["jobs"][job_id])

    def set_state(self, job_id: str, cobalt_state: str) -> None:
        """Advance a job to another Cobalt state (queued, starting, running, ...)."""
        state = self.load()
        state["jobs"][job_id]["state"] = cobalt_state
        self.save(state)

    def vanish(self, job_id: str) -> None:
        """Drop a job from qstat, as Cobalt does once it has finished."""
        state = self.load()
        del state["jobs"][job_id]
        self.save(state)

    def behave(self, command: str, **behavior: Any) -> None:
        """Make ``command`` fail (rc, stderr, stdout) or hang (sleep seconds)."""
        state = self.load()
        state.setdefault("behavior", {})[command] = behavior
        self.save(state)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCobalt]:
    """Put the fake Cobalt CLI first on PATH for this test only."""
    path = os.pathsep.join([str(FAKE_BIN), str(Path(sys.executable).parent),
                            os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("FAKE_COBALT_STATE", str(tmp_path / "cobalt_state.json"))
    monkeypatch.setenv("USER", "jdoe")
    monkeypatch.delenv("QSTAT_HEADER", raising=False)
    monkeypatch.setattr(cobalt, "time", SimpleNamespace(time=lambda: FROZEN_TIME))
    yield FakeCobalt(tmp_path / "cobalt_state.json")


def make_provider(script_dir: Path, **overrides: Any) -> CobaltProvider:
    """A Theta-style provider: 2 KNL nodes in debug-cache-quad for 30 minutes."""
    settings: dict[str, Any] = dict(
        account="MyProject", queue="debug-cache-quad", nodes_per_block=2,
        walltime="00:30:00", attrs="mcdram=cache:numa=quad",
        scheduler_options="#COBALT --env KMP_AFFINITY=disabled",
        worker_init="module load miniconda-3\nsource activate /projects/MyProject/env",
        cmd_timeout=20)
    settings.update(overrides)
    provider = CobaltProvider(**settings)
    script_dir.mkdir(parents=True, exist_ok=True)
    provider.script_dir = str(script_dir)
    return provider


def submit(provider: CobaltProvider) -> str:
    return provider.submit(WORKER_CMD, 1, "parsl.htex.block-0")


def test_submit_script_matches_golden(fake: FakeCobalt, tmp_path: Path) -> None:
    script_dir = tmp_path / "submit_scripts"
    submit(make_provider(script_dir))
    script = script_dir / f"{JOB_NAME}.submit"
    assert script.stat().st_mode & 0o777 == 0o700, "Cobalt needs an executable script"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text().replace(str(script_dir), "@SCRIPT_DIR@")
    check_golden(GOLDEN, text)


def test_qsub_command_line_and_directives(fake: FakeCobalt, tmp_path: Path) -> None:
    script_dir = tmp_path / "submit_scripts"
    job_id = submit(make_provider(script_dir))
    script = str(script_dir / f"{JOB_NAME}.submit")
    assert fake.calls("qsub") == [["qsub", "-n", "2", "-q", "debug-cache-quad", "-t", "30",
                                   "-A", "MyProject", script]]
    # The fake parsed the #COBALT block the way Theta's qsub did; every directive,
    # including the user's scheduler_options, must have been seen.
    job = fake.job(job_id)
    assert job["mode"] == "script"
    assert (job["nodes"], job["walltime"], job["queue"], job["project"]) == (
        2, 30, "debug-cache-quad", "MyProject")
    assert job["attrs"] == {"mcdram": "cache", "numa": "quad"}
    assert job["outputprefix"] == str(script_dir / JOB_NAME)
    assert job["envs"] == "KMP_AFFINITY=disabled"


def test_minimal_provider_submits(fake: FakeCobalt, tmp_path: Path) -> None:
    provider = make_provider(tmp_path / "s", account=None, queue=None, attrs=None,
                             scheduler_options="", walltime="01:10:20")
    job_id = submit(provider)
    assert fake.calls("qsub")[0][:5] == ["qsub", "-n", "2", "-t", "70"]
    assert fake.job(job_id)["attrs"] == {}
    status = provider.status([job_id])[0]
    assert status.stdout_path == str(tmp_path / "s" / f"{JOB_NAME}.output")
    assert status.stderr_path == str(tmp_path / "s" / f"{JOB_NAME}.error")


def test_attrs_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match="--attrs"):
        CobaltProvider(attrs={"mcdram": "flat"}, scheduler_options="#COBALT --attrs a=b")


@pytest.mark.parametrize(("cobalt_state", "expected"), [
    ("queued", JobState.PENDING), ("user_hold", JobState.PENDING),
    ("admin_hold", JobState.PENDING), ("dep_hold", JobState.PENDING),
    ("maxrun_hold", JobState.PENDING), ("starting", JobState.PENDING),
    ("running", JobState.RUNNING), ("exiting", JobState.COMPLETED),
    ("killing", JobState.COMPLETED), ("no_such_state", JobState.UNKNOWN),
])
def test_status_maps_cobalt_states(fake: FakeCobalt, tmp_path: Path, cobalt_state: str,
                                   expected: JobState) -> None:
    provider = make_provider(tmp_path / "s")
    job_id = submit(provider)
    fake.set_state(job_id, cobalt_state)
    assert [s.state for s in provider.status([job_id])] == [expected]
    assert fake.calls("qstat")[-1] == ["qstat", "-u", "jdoe"]


def test_status_lifecycle_and_vanished_job(fake: FakeCobalt, tmp_path: Path) -> None:
    provider = make_provider(tmp_path / "s")
    job_id = submit(provider)
    seen = []
    for cobalt_state in ("queued", "starting", "running", "exiting"):
        fake.set_state(job_id, cobalt_state)
        seen.append(provider.status([job_id])[0].state)
    fake.vanish(job_id)
    seen.append(provider.status([job_id])[0].state)
    assert seen == [JobState.PENDING, JobState.PENDING, JobState.RUNNING,
                    JobState.COMPLETED, JobState.COMPLETED]


def test_status_follows_custom_qstat_header(fake: FakeCobalt, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make_provider(tmp_path / "s")
    job_id = submit(provider)
    fake.set_state(job_id, "running")
    monkeypatch.setenv("QSTAT_HEADER", "JobID:JobName:User:WallTime:RunTime:Nodes:State:Queue")
    assert provider.status([job_id])[0].state == JobState.RUNNING


def test_cancel_calls_qdel(fake: FakeCobalt, tmp_path: Path) -> None:
    provider = make_provider(tmp_path / "s")
    first, second = submit(provider), submit(provider)
    assert provider.cancel([first, second]) == [True, True]
    assert fake.calls("qdel") == [["qdel", first, second]]
    assert fake.job(first)["state"] == "killing"
    assert [s.state for s in provider.status([first, second])] == [JobState.COMPLETED] * 2


def test_cancel_failure_returns_false(fake: FakeCobalt, tmp_path: Path) -> None:
    provider = make_provider(tmp_path / "s")
    job_id = submit(provider)
    fake.behave("qdel", rc=1, stderr="Failed to connect to queue manager")
    assert provider.cancel([job_id]) == [False]


def test_failed_qsub_raises_submit_exception(fake: FakeCobalt, tmp_path: Path) -> None:
    message = "Project MyProject has no allocation on queue debug-cache-quad"
    fake.behave("qsub", rc=1, stderr=message)
    provider = make_provider(tmp_path / "s")
    with pytest.raises(SubmitException) as info:
        submit(provider)
    assert message in str(info.value)
    assert info.value.retcode == 1
    assert provider.resources == {}


def test_qsub_rejecting_script_raises(fake: FakeCobalt, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make_provider(tmp_path / "s")
    monkeypatch.setattr(cobalt.os, "chmod", lambda path, mode: None)  # leave it 0644
    with pytest.raises(SubmitException, match="is not executable"):
        submit(provider)


@pytest.mark.timeout(60)
def test_hanging_qstat_is_bounded_by_cmd_timeout(fake: FakeCobalt, tmp_path: Path) -> None:
    provider = make_provider(tmp_path / "s", cmd_timeout=1)
    job_id = submit(provider)
    fake.set_state(job_id, "running")
    fake.behave("qstat", sleep=120)      # a hang would outlast the test's 60 s timeout
    states = [s.state for s in provider.status([job_id])]
    assert states == [JobState.PENDING]  # a hung qstat leaves the last known state
    assert_reaped(int(fake.load()["pids"]["qstat"]))


@pytest.mark.timeout(60)
def test_hanging_qsub_raises(fake: FakeCobalt, tmp_path: Path) -> None:
    fake.behave("qsub", sleep=120)
    with pytest.raises(SubmitException, match="timed out"):
        submit(make_provider(tmp_path / "s", cmd_timeout=1))


def assert_reaped(pid: int) -> None:
    """The timed-out fake must have been killed, not left sleeping."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.1)
    pytest.fail(f"fake qstat (pid {pid}) still running after cmd_timeout")
