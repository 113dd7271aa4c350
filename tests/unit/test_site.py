"""Site settings and files, without an agent: the checks of ``site=`` before anything is
queued, the tags a queued run gets, and how a live agent is found from its pid file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners.errors import ConfigError
from runners.site.files import SiteFiles
from runners.site.submit import check, queue_tags, stored_table
from tests.support import make


def test_site_group_sets_the_machine_and_overrides_compose() -> None:
    cfg = make("site=slurm", "site.wait=true", "site.retries=2")
    assert cfg.site.name == "slurm" and cfg.machine.name == "docker-slurm"
    assert cfg.site.wait is True
    assert make().site.name == ""          # no site: run here and now
    tags = queue_tags(cfg)
    assert tags["site"] == "slurm" and tags["site.retries"] == "2"
    assert tags["site.attempt"] == "1" and float(tags["site.queued_at"]) > 0


@pytest.mark.parametrize("overrides, words", [
    (["site=local", "machine=docker-slurm"], "site=local runs on machine=local"),
    (["site=local", "site.retries=-1"], "site.retries=-1 must be >= 0"),
    (["site=local", "site.wait_agent_s=0"], "site.wait_agent_s=0.0 > 0"),
])
def test_bad_site_settings_are_one_line(overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")) as err:
        check(make(*overrides))
    assert "\n" not in str(err.value)


def test_site_files_find_only_a_live_agent(tmp_path: Path) -> None:
    cfg = make("site=local", f"site.dir={tmp_path}")
    files = SiteFiles.of(cfg)
    assert files.root == tmp_path / "local"
    assert files.pid() is None                  # no pid file
    files.root.mkdir(parents=True)
    files.lock.write_text(f"{os.getpid()}\n")   # a live process, but not an agent
    assert files.pid() is None
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                              "runners.site.agent"])
    try:
        files.lock.write_text(f"{agent.pid}\n")
        assert files.pid() == agent.pid
    finally:
        agent.kill()
        agent.wait()
    assert files.pid() is None                  # the pid is gone
    files.write_status({"running": ["r1"]})
    status = files.read_status()
    assert status is not None and status["running"] == ["r1"] and status["written"] > 0


def test_a_stored_run_prints_the_table_of_a_direct_run() -> None:
    """``site.wait=true`` through the store prints the run's statistics, headline first."""
    stats = {"min": 1.0, "median": 2.0, "mean": 2.0, "max": 3.0, "std": 1.0, "cv": 0.5}
    metrics = {f"b_s.{k}": v for k, v in stats.items()}
    metrics.update({f"a_s.{k}": v for k, v in stats.items()})
    metrics.update({"stage.bench_s": 0.1, "c_s.median": 1.0})    # no table row: incomplete
    lines = stored_table(metrics, "b_s").splitlines()
    assert lines[0].split() == ["metric", "min", "median", "mean", "max", "std", "cv"]
    assert [ln.split()[0] for ln in lines[1:]] == ["b_s", "a_s"]
    assert lines[1].split()[1:3] == ["1", "2"]
