"""``bench report`` over a synthetic SQLite store: the page, the data, the PDF, a real browser."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runners.analysis.merits import merit_metrics
from runners.cli.report import add_parser
from runners.report import page
from runners.report.pdf import plot_names
from runners.tracking.query import StoreReader
from runners.tracking.tracker import Tracker
from tests.support import chromium, one_error, require_tool

T0 = int(pd.Timestamp("2025-03-01T02:00:00Z").value // 10**6)    # first run, in ms
DAY = 86_400_000
EXP = "mpi4py_import"
COMMIT_A = "a1b2c3d4e5" + "0" * 30
COMMIT_B = "b9f8e7d6c5" + "1" * 30
MACHINES = ("polaris", "aurora")
N = 20
STEP_AT = 14                   # polaris total_s.median is 30% higher from this point on
TIMEOUT_AT = 10                # aurora: a FAILED run (failure.kind=timeout) before this point


def add_run(tracker: Tracker, tags: Mapping[str, str], metrics: Mapping[str, float],
            start_ms: int, status: str = "FINISHED") -> str:
    """One run of EXP with a fixed start time, closed with ``status``."""
    run = tracker.online.client.create_run(tracker.experiment_id(EXP), start_time=start_ms,
                                    tags={**tags, "mlflow.runName": "run"}, run_name="run")
    run_id = str(run.info.run_id)
    if metrics:
        tracker.log_metrics(run_id, metrics)
    if status == "FAILED":
        tracker.fail_run(run_id, "run", "timeout", "walltime of 600 s exceeded")
    else:
        tracker.end_run(run_id, status)
    return run_id


def make_store(directory: Path) -> str:
    """2 machines x 2 series x 20 daily points; a 30% step on polaris, a timeout on aurora."""
    uri = f"sqlite:///{directory}/mlflow.db"
    tracker = Tracker(uri)
    rng = np.random.default_rng(3)
    for m, machine in enumerate(MACHINES):
        tags = {"machine": machine, "fs": "lustre", "bench": EXP,
                "config.hash": f"{machine}-cfg-0123456789"}
        noise = 1.0 + 0.01 * rng.standard_normal((N, 2))
        for i in range(N):
            stepped = machine == "polaris" and i >= STEP_AT
            total = (2.0 + m) * noise[i, 0] * (1.3 if stepped else 1.0)
            commit = COMMIT_B if i >= STEP_AT else COMMIT_A
            add_run(tracker, {**tags, "git.commit": commit},
                    {"total_s.median": total, "import_s.median": 0.5 * noise[i, 1],
                     "total_s.std": 0.01}, T0 + i * DAY + m * 60_000)
            if machine == "aurora" and i == TIMEOUT_AT - 1:
                add_run(tracker, {**tags, "git.commit": COMMIT_A}, {},
                        T0 + i * DAY + DAY // 2, status="FAILED")
    return uri


def bench(*argv: str) -> int:
    """Parse and run ``bench report`` in-process, as ``bench`` would."""
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="verb"))
    args = p.parse_args(["report", *argv])
    return int(args.func(args))


@dataclass
class Report:
    uri: str
    out: Path
    stdout: str


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The store and a report of it (PDF included), built once."""
    import contextlib
    import io

    uri = make_store(tmp_path_factory.mktemp("store"))
    out = tmp_path_factory.mktemp("site") / "nightly"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = bench("--output", str(out), "--tracking-uri", uri, "--title", "Nightly results")
    assert code == 0, text.getvalue()
    return Report(uri, out, text.getvalue())


class Images(HTMLParser):
    """The ``<img>`` attributes, headings and ``<tr class>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self.row_classes: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag in ("h1", "h2", "h3"):
            self._in = tag
            self.headings.append("")
        elif tag == "tr":
            self.row_classes.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.headings[-1] += data


def parsed(out: Path) -> tuple[str, Images]:
    text = (out / "index.html").read_text(encoding="utf-8")
    parser = Images()
    parser.feed(text)
    return text, parser


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size


# ------------------------------------------------------------------------- the page


def test_page_sections_and_table(report: Report) -> None:
    text, html = parsed(report.out)
    assert html.headings[0] == "Nightly results"
    assert "Machine: polaris" in html.headings and "Machine: aurora" in html.headings
    assert html.headings.count("Latest vs baseline") == 2
    assert re.search(r"last updated \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert f"<code title=\"{COMMIT_B}\">{COMMIT_B[:12]}</code>" in text   # newest run's commit
    assert "branch <code>" in text
    assert html.row_classes.count("regression") == 1
    row = next(r for r in text.splitlines() if r.startswith('<tr class="regression">'))
    assert "total_s.median" in row and "regression" in row
    change = float(re.findall(r"([+-]\d+\.\d)%", row)[0])
    assert 25 < change < 35, row
    assert "timeout" in text                                       # failed-runs table
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)         # no external URL
    assert "report:" in report.stdout and "1 regression(s)" in report.stdout


def test_every_image_exists_with_alt(report: Report) -> None:
    _, html = parsed(report.out)
    assert len(html.images) == 4                                  # 2 machines x 2 series
    for img in html.images:
        src = img.get("src") or ""
        assert src.startswith("plots/") and src.endswith(".png"), src
        assert (report.out / src).stat().st_size > 5000, src
        assert img.get("alt"), img
        assert png_size(report.out / src) == (640, 360)


def test_data_files(report: Report) -> None:
    runs = pd.read_csv(report.out / "data" / "runs.csv")
    assert len(runs) == 2 * N + 1 and (runs["status"] == "FAILED").sum() == 1
    table = pd.read_csv(report.out / "data" / "verdicts.csv")
    assert len(table) == 4 and set(table["metric"]) == {"total_s.median", "import_s.median"}
    bad = table[table["status"] == "regression"]
    assert list(bad["machine"]) == ["polaris"] and list(bad["metric"]) == ["total_s.median"]
    assert bool(bad["step_detected"].iloc[0])
    assert bad["change"].iloc[0] == pytest.approx(0.3, abs=0.05)
    assert bad["baseline"].iloc[0] == pytest.approx(2.0, abs=0.05)
    assert (table.loc[table["status"] != "regression", "status"] == "no change").all()
    aurora = table[table["machine"] == "aurora"]
    assert (aurora["n_failed"] == 1).all() and (aurora["n_points"] == N).all()
    assert all((report.out / p).is_file() for p in table["plot"])


def test_series_table_gaps_and_default_metrics(report: Report) -> None:
    frame = StoreReader(report.uri).runs_table([EXP])
    metrics = merit_metrics(frame)[EXP]
    assert metrics == ["import_s.median", "total_s.median"]           # no total_s.std
    series = page.series_table(frame, metrics)
    gaps = series[series["value"].isna()]
    assert len(gaps) == 2 and set(gaps["failure"]) == {"timeout"}
    assert set(gaps["machine"]) == {"aurora"}
    names = plot_names(page.verdicts(series))
    assert len(set(names)) == 4 and all("/" not in n for n in names)


def test_series_table_pure() -> None:
    """Without the store: a KILLED run without failure.kind, a RUNNING run, a direction tag."""
    t = pd.to_datetime([T0 + k * DAY for k in range(5)], unit="ms", utc=True)
    frame = pd.DataFrame({
        "run_id": list("abcde"), "experiment": EXP,
        "status": ["FINISHED", "KILLED", "FINISHED", "RUNNING", "FINISHED"],
        "start_time": t, "end_time": t, "tag.machine": ["m1"] * 4 + [None],
        "tag.direction.bw": "higher", "metric.bw.median": [1.0, np.nan, 2.0, np.nan, 3.0],
        "metric.other.median": np.nan})
    series = page.series_table(frame, ["bw.median", "other.median"])
    assert list(series["run_id"]) == ["a", "b", "c", "e"]          # other.median: no value
    assert list(series["failure"]) == ["", "killed", "", ""]
    assert list(series["machine"]) == ["m1", "m1", "m1", "-"]
    assert set(series["direction"]) == {"higher"} and set(series["fs"]) == {"-"}
    table = page.verdicts(series)
    assert list(table["n_failed"]) == [0, 1] and list(table["status"]) == ["not enough data"] * 2
    assert list(table["last_status"]) == ["FINISHED", "FINISHED"]
    html = page.render_html(table, plot_names(table), page.failures(frame), title="<T>",
                            updated=t[0], commit="", branch=None, n_runs=len(frame))
    assert "<title>&lt;T&gt;</title>" in html and "commit <code title=\"\">unknown</code>" in html
    assert html.count("<img ") == 2 and "Machine: m1" in html and "Machine: -" in html


# ------------------------------------------------------------------------- the PDF


def test_pdf_first_page_renders(report: Report, tmp_path: Path) -> None:
    pdftoppm = require_tool("pdftoppm")
    pdf = report.out / "summary.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=120)
    pages = list(tmp_path.glob("page*.png"))
    assert len(pages) == 1
    assert pages[0].stat().st_size > 10_000
    width, height = png_size(pages[0])
    assert width > height > 300                                    # A4 landscape at 50 dpi
    info = subprocess.run([pdftoppm.replace("pdftoppm", "pdfinfo"), str(pdf)],
                          capture_output=True, text=True, timeout=60)
    if info.returncode == 0:
        assert re.search(r"Pages:\s+3\n", info.stdout)          # table + a page per machine


# ------------------------------------------------------------------------- a real browser

LOADED_HOOK = """<script>
addEventListener("load", () => {
  const all = Array.from(document.images);
  const ok = all.filter((i) => i.complete && i.naturalWidth > 0);
  document.documentElement.setAttribute("data-images", ok.length + "/" + all.length);
});
</script>"""


def test_browser_screenshot(report: Report, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1280,2000",
                    "--virtual-time-budget=5000", (report.out / "index.html").as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert png_size(shot) == (1280, 2000)


def test_browser_loads_every_image(report: Report) -> None:
    text = (report.out / "index.html").read_text(encoding="utf-8")
    probe = report.out / "_probe.html"           # the page plus a load hook, beside it
    probe.write_text(text.replace("</body>", LOADED_HOOK + "</body>"), encoding="utf-8")
    try:
        done = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert len(re.findall(r"<img ", dom)) == 4
    assert 'data-images="4/4"' in dom, re.findall(r"data-images=\"[^\"]*\"", dom)


# ------------------------------------------------------------------------- rerun, bad input


def test_rerun_replaces_previous_report(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert bench("--output", str(out), "--tracking-uri", report.uri, "--no-pdf",
                 "--metric", "total_s.median") == 0
    (out / "CNAME").write_text("bench.example\n")                 # the host's own file
    stale = out / "plots" / "stale.png"
    stale.write_bytes(b"x")
    (out / "summary.pdf").write_bytes(b"%PDF-old")
    assert bench("--output", str(out), "--tracking-uri", report.uri, "--no-pdf",
                 "--experiment", EXP, "--metric", "import_s.median") == 0
    assert (out / "CNAME").is_file() and not stale.exists()
    assert not (out / "summary.pdf").exists()
    assert len(list((out / "plots").iterdir())) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]   # no leftovers


@pytest.mark.parametrize("argv, words", [
    (["--experiment", "nope"], "no experiment 'nope'"),
    (["--metric", "nope.median"], "no metric 'nope.median'"),
    (["--metric", "total_s.median,nope"], "no metric 'nope'"),
])
def test_bad_input_writes_nothing(report: Report, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], argv: list[str],
                                  words: str) -> None:
    out = tmp_path / "out"
    assert bench("--output", str(out), "--tracking-uri", report.uri, *argv) == 2
    assert words in one_error(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_and_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none" / "mlflow.db"
    assert bench("--output", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{missing}") == 2
    assert "no store at" in one_error(capsys)
    assert not missing.parent.exists()
    StoreReader(f"sqlite:///{tmp_path}/empty/mlflow.db").experiment_names()   # makes the file
    capsys.readouterr()                                                     # MLflow's log
    assert bench("--output", str(tmp_path / "out"),
                 "--tracking-uri", f"sqlite:///{tmp_path}/empty/mlflow.db") == 2
    assert "no runs" in one_error(capsys)
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_folder(report: Report, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    assert bench("--output", str(foreign), "--tracking-uri", report.uri) == 2
    assert "not empty" in one_error(capsys)
    (foreign / "index.html").write_text("<html><body>someone's page</body></html>\n")
    assert bench("--output", str(foreign), "--tracking-uri", report.uri) == 2
    assert "not empty" in one_error(capsys)
    assert sorted(p.name for p in foreign.iterdir()) == ["index.html", "notes.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    assert bench("--output", str(afile), "--tracking-uri", report.uri) == 2
    assert "is a file" in one_error(capsys)


def test_many_one_point_series_one_figure_per_metric(tmp_path: Path) -> None:
    """A sweep (every run its own config): a figure per (machine, experiment, metric)."""
    import subprocess as sp

    from runners.report.build import build
    from runners.report.pdf import MAX_LINES, PDF_ROWS, PDF_TABLE_PAGES

    n = 150                                          # per machine, each its own config.hash
    t = pd.to_datetime([T0 + k * 60_000 for k in range(2 * n)], unit="ms", utc=True)
    status = ["FAILED" if k % 50 == 7 else "FINISHED" for k in range(2 * n)]
    frame = pd.DataFrame({
        "run_id": [f"r{k:04d}" for k in range(2 * n)], "experiment": EXP, "status": status,
        "start_time": t, "end_time": t, "tag.machine": ["m1", "m2"] * n, "tag.fs": "tmpfs",
        "tag.config.hash": [f"{k:016x}" for k in range(2 * n)],
        "tag.failure.kind": ["timeout" if s == "FAILED" else None for s in status],
        "metric.a.median": np.linspace(1.0, 2.0, 2 * n),
        "metric.b.median": np.linspace(5.0, 3.0, 2 * n)})
    frame.loc[frame["status"] == "FAILED", ["metric.a.median", "metric.b.median"]] = np.nan
    out = tmp_path / "site"
    made = build(frame, {EXP: ["a.median", "b.median"]}, out, "Sweep", True, tmp_path)
    finished = int((frame["status"] == "FINISHED").sum())
    assert made["series"] == 2 * finished and made["figures"] == 4      # 2 machines x 2 metrics
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == [f"{m}--{EXP}--{x}.median.png" for m in ("m1", "m2") for x in "ab"]
    text, html = parsed(out)
    assert len(html.images) == 4 and all(img.get("alt") for img in html.images)
    assert text.count("more series as grey dots only") == 4
    assert html.headings.count("Latest vs baseline") == 2
    assert "the first 200 of" in text and 'href="data/verdicts.csv"' in text
    assert text.count('<td class="verdict"') == 2 * 200              # the capped tables
    table = pd.read_csv(out / "data" / "verdicts.csv")
    assert len(table) == 2 * finished                            # every series in the data
    assert table.groupby("plot")["drawn"].sum().max() == MAX_LINES
    assert set(table["plot"]) == {f"plots/{p}" for p in plots}
    info = shutil.which("pdfinfo")
    if info:
        pages = sp.run([info, str(out / "summary.pdf")], capture_output=True, text=True,
                       timeout=60).stdout
        assert re.search(rf"Pages:\s+{PDF_TABLE_PAGES + 2}\n", pages)   # capped table + 2
    assert made["pages"] == PDF_TABLE_PAGES + 2 and 2 * finished > PDF_TABLE_PAGES * PDF_ROWS
