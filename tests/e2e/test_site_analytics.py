"""``bench analytics --site``: real runs tagged as a site agent tags them, per site."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import RunPy, Store, one_error


@pytest.mark.e2e
def test_bench_analytics_per_site_on_real_runs(run_py: RunPy, store: Store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from runners.cli.main import main

    # one sweep, four jobs: sites a and b, each a finished and a failed no-op run, claimed
    # 1.5 s (a) and 3 s (b) after they were queued
    run_py("-m", "bench=sleep", "bench.params.seconds=0", "bench.params.exit=0,3",
           '+tags={site:a,site.queued_at:"100.0",site.claimed_at:"101.5"},'
           '{site:b,site.queued_at:"100.0",site.claimed_at:"103.0"}',
           *store.overrides())
    assert len(store.runs("sleep")) == 5                          # and the sweep's parent
    out = tmp_path / "analytics"
    rc = main(["analytics", "--tracking-uri", store.uri, "--site", "a", "--site", "b",
               "--output", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0, lines
    for line, site, wait in ((lines[0], "a", "1.50"), (lines[1], "b", "3.00")):
        assert line.startswith(f"site {site}: 2 runs (1 finished, 1 failed); "
                               "1 tasks completed (1 failed) in "), line
        assert "tasks/min" in line and "runs/min" in line and ", peak 1;" in line
        assert line.endswith(f"queue wait median {wait} s, p95 {wait} s"), line
    assert lines[2:] == [f"  {out / 'throughput.png'}", f"  {out / 'utilization.png'}"]
    for name in ("throughput.png", "utilization.png"):
        assert (out / name).stat().st_size > 1000

    every = tmp_path / "every"
    assert main(["analytics", "--tracking-uri", store.uri, "--site", "all",
                 "--output", str(every)]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == lines[:2]
    assert (every / "utilization.png").is_file()

    nowhere = tmp_path / "nowhere"
    assert main(["analytics", "--tracking-uri", store.uri, "--site", "c",
                 "--output", str(nowhere)]) == 2
    assert one_error(capsys) == (f"error: no runs with site 'c' in {store.uri}; "
                                 "sites: a, b (or --site all)")
    assert main(["analytics", "--tracking-uri", store.uri, "--site", "a", "--sweep-id",
                 "x", "--output", str(nowhere)]) == 2
    assert "give --site alone" in one_error(capsys)
    assert not nowhere.exists()
