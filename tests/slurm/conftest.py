"""The Slurm tier leaves no daemon behind: the cluster the tests start is stopped at the end.

A cluster that was already up before the session (a developer's own) is left running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support import ROOT

SLURM = ROOT / "cluster" / "slurm"


@pytest.fixture(scope="session", autouse=True)
def slurm_stopped_at_end() -> Iterator[None]:
    """Note whether Slurm was up; afterwards run stop.sh unless it was."""
    was_up = subprocess.run(["bash", str(SLURM / "status.sh")], capture_output=True,
                            timeout=60, check=False).returncode == 0
    yield
    if not was_up:
        stop = subprocess.run(["bash", str(SLURM / "stop.sh")], capture_output=True, text=True,
                              timeout=120, check=False)
        assert stop.returncode == 0, f"stop.sh failed:\n{stop.stdout}\n{stop.stderr}"
