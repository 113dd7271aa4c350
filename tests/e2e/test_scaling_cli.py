"""``bench scaling`` in a subprocess over a real sweep: ``python run.py -m bench=sleep
bench.ranks=1,2 fs=tmpfs,scratch`` into a fresh SQLite store (run once for the module).

``sleep`` does not scale with ranks: the tests check the table, the plot and the exit
codes, not the physics.
"""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.support import ROOT, Store, child_env

pytestmark = pytest.mark.e2e
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["fs", "bench.ranks", "runs", "median", "ideal", "speedup", "efficiency"]


@dataclass
class Study:
    """The store of the sweep, its sweep.id and a scratch folder."""

    store: Store
    sweep_id: str
    tmp: Path

    def bench(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``bench scaling --tracking-uri <store> <argv>`` in a subprocess."""
        return subprocess.run([sys.executable, "-m", "runners.cli", "scaling",
                               "--tracking-uri", self.store.uri, *argv],
                              capture_output=True, text=True, timeout=120, env=child_env(),
                              cwd=self.tmp)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """One sweep over 1 and 2 ranks on tmpfs and scratch (4 jobs, one trial each)."""
    tmp = tmp_path_factory.mktemp("scaling")
    store = Store(f"sqlite:///{tmp}/mlruns/mlflow.db", tmp / "mlruns" / "artifacts",
                  tmp / "mlruns" / "mlflow.db")
    argv = [sys.executable, str(ROOT / "run.py"), "-m", "bench=sleep",
            "bench.params.seconds=0", "bench.ranks=1,2", "bench.trials=1", "fs=tmpfs,scratch",
            *store.overrides(), f"hydra.run.dir={tmp}/outputs/run",
            f"hydra.sweep.dir={tmp}/multirun"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=child_env(),
                          cwd=tmp)
    assert proc.returncode == 0, f"the sweep failed:\n{proc.stdout}\n{proc.stderr}"
    kids = [r for r in store.runs("sleep") if "mlflow.parentRunId" in r.data.tags]
    assert len(kids) == 4
    return Study(store, kids[0].data.tags["sweep.id"], tmp)


def test_strong_table_and_log_log_plot(study: Study) -> None:
    png = study.tmp / "plots" / "strong.png"
    proc = study.bench("--sweep-id", study.sweep_id, "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("strong scaling of slept_s.median (median over runs at each "
                               "bench.ranks) in 2 curve(s) over 4 runs")
    assert lines[1].split() == COLUMNS
    rows = [line.split() for line in lines[2:6]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("scratch", "1", "1"), ("scratch", "2", "1"), ("tmpfs", "1", "1"), ("tmpfs", "2", "1")]
    assert lines[6] == f"wrote {png}"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_weak_csv_of_the_median_total_time(study: Study) -> None:
    proc = study.bench("--sweep", study.sweep_id, "--mode", "weak", "--metric", "total_s",
                       "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(io.StringIO(proc.stdout))
    assert list(table.columns) == COLUMNS and len(table) == 4
    assert table["runs"].tolist() == [1, 1, 1, 1]
    runs = {(r.data.tags["fs"], int(r.data.params["bench.ranks"])):
            r.data.metrics["total_s.median"] for r in study.store.runs("sleep")
            if "mlflow.parentRunId" in r.data.tags}
    for row in table.itertuples(index=False):
        t1 = runs[(row.fs, 1)]
        assert row.median == pytest.approx(runs[(row.fs, row[1])])
        assert row.ideal == pytest.approx(t1)                    # weak: the time stays t1
        assert row.efficiency == pytest.approx(t1 / row.median)
        assert row.speedup == pytest.approx(row[1] * t1 / row.median)


def test_markdown_to_a_file(study: Study) -> None:
    out = study.tmp / "tables" / "scaling.md"
    proc = study.bench("--format", "markdown", "--where", "fs=tmpfs", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}: 2 rows\n"
    lines = out.read_text().splitlines()
    assert lines[0] == "| bench.ranks | runs | median | ideal | speedup | efficiency |"
    assert len(lines) == 4 and lines[2].startswith("| 1 | 1 | ")


@pytest.mark.parametrize(("argv", "says"), [
    (["--where", "machine=nowhere"], "no runs match"),
    (["--sweep-id", "0000nosuch00"], "no runs match"),
    (["--where", "bench.ranks=1"], "a scaling study needs at least two distinct bench.ranks "
                                   "values; the matching runs have only bench.ranks=1"),
    (["--by", "nodes"], "a scaling study needs at least two distinct machine.nodes values"),
    (["--metric", "nope"], "unknown metric 'nope' in the matching runs; available: "),
    (["--mode", "sideways"], "--mode 'sideways' is not valid; use one of strong, weak"),
    (["--plot", "scaling.svg"], "is not a .png file"),
])
def test_bad_input_is_one_line_and_exit_2(study: Study, argv: list[str], says: str) -> None:
    proc = study.bench(*argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: ") and says in line
    if argv[0] == "--metric":
        assert "slept_s.median" in line and "total_s.median" in line


def test_the_report_has_a_scaling_section(study: Study) -> None:
    out = study.tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "runners.cli", "report", "--output", str(out),
                           "--tracking-uri", study.store.uri, "--no-pdf"],
                          capture_output=True, text=True, timeout=300, env=child_env(),
                          cwd=study.tmp)
    assert proc.returncode == 0, proc.stderr
    html = (out / "index.html").read_text(encoding="utf-8")
    assert '<li><a href="#scaling">Scaling</a> — 1 sweep(s) over ranks</li>' in html
    assert '<section id="scaling"><h2>Scaling</h2>' in html
    assert f"<h3>sleep · slept_s.median · sweep <code>{study.sweep_id}</code></h3>" in html
    for fs in ("scratch", "tmpfs"):            # a table per curve, a row per ranks
        table = html.split(f"<caption>fs={fs}</caption>")[1].split("</table>")[0]
        assert [row.split("</td>")[0] for row in table.split('<tr><td class="num">')[1:]] \
            == ["1", "2"]
    data = pd.read_csv(out / "data" / "scaling.csv")
    assert list(data.columns) == ["experiment", "sweep", "metric", *COLUMNS]
    assert len(data) == 4 and set(data["sweep"]) == {study.sweep_id}
    assert data.loc[data["bench.ranks"] == 1, "efficiency"].tolist() == [1.0, 1.0]
