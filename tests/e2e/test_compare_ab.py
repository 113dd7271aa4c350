"""``bench compare --baseline … --contender …`` on two real sweeps of ``bench=sleep``: the
contender sleeps ten times as long, so its headline (``slept_s``) is a significant
regression in every matched config, while ``bench.params.seconds`` differs by design."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, Store, child_env

pytestmark = pytest.mark.e2e


def sweeps(store: Store, tmp_path: Path, *seconds: float) -> list[tuple[str, str]]:
    """Run one 2-job sweep (bench.trials=5,6) per sleep duration, all at once (each with its
    own output directories); each one's ``(sweep.id, parent run id)``."""
    procs = [subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "-m", "bench=sleep",
         f"bench.params.seconds={s}", "bench.trials=5,6", *store.overrides(),
         f"hydra.run.dir={tmp_path}/run{i}", f"hydra.sweep.dir={tmp_path}/multirun{i}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        cwd=tmp_path) for i, s in enumerate(seconds)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        found = re.search(r"sweep (\w+): 2 finished.*\[parent run (\w+) FINISHED\]", stdout)
        assert found, stdout
        out.append((found.group(1), found.group(2)))
    return out


def bench(store: Store, *argv: str) -> subprocess.CompletedProcess:
    """The real ``bench compare`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "runners.cli.main", "compare",
                           "--tracking-uri", store.uri, *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=child_env(), check=False)


def test_two_sweeps_compare_with_significance(store: Store, tmp_path: Path) -> None:
    (base_sweep, base_parent), (cont_sweep, cont_parent) = sweeps(store, tmp_path, 0.01, 0.1)

    text = bench(store, "--baseline", base_sweep, "--contender", cont_parent,
                 "--fail-on-regression")
    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"baseline {base_sweep} (2 runs) vs contender {cont_parent} (2 runs)"
    assert lines[1] == "by design (differ between the sides, not matched): bench.params.seconds"
    rows = [ln.split() for ln in lines[3:5]]
    # machine fs bench.trials metric baseline contender ratio p n mark
    assert [(r[0], r[2], r[3], r[-2], r[-1]) for r in rows] == [
        ("local", "5", "slept_s.median", "5/5", "+"), ("local", "6", "slept_s.median", "6/6", "+")]
    # ~10 on a quiet host; a busy one stretches the short sleeps more than the long ones
    assert all(float(r[6]) > 2 and float(r[7]) < 0.05 for r in rows), text.stdout
    assert lines[-1].startswith("2 worse, 0 better, 0 unchanged")

    # the other way round: better, and no regression for the gate
    md = bench(store, "--baseline", cont_sweep, "--contender", base_parent, "--format",
               "markdown", "--metric", "slept_s,total_s", "--fail-on-regression")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("### Benchmark comparison: contender vs baseline\n")
    table = [ln for ln in md.stdout.splitlines() if ln.startswith("| local |")]
    assert len(table) == 4 and sum(ln.endswith("| - |") for ln in table) >= 2

    bad = bench(store, "--baseline", base_sweep, "--contender", "0123456789ab")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == f"error: no run or sweep '0123456789ab' in {store.uri}"
