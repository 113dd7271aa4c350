"""Huge and non-UTF-8 benchmark output: streamed result parsing and capped log artifacts."""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc
from pathlib import Path

import pytest

from runners.kinds.parsl_perf import parse_parsl_perf, parse_parsl_perf_file
from runners.stages import measure
from runners.stages.base import StageError, StageResult
from runners.stages.measure import truncate_log
from runners.stages.results import ResultParseError, parse_file
from runners.stages.trial import TrialCommand, run_trial
from tests.support import DATA

HEAD = b"HEAD \xff\xfe not UTF-8\n"
JUNK = b"junk \xff\xfe\xc3 " + b"x" * 1000 + b"\n"     # invalid UTF-8 on every line
BLOCK = JUNK * 1000                                     # ~1 MB
BLOCKS = 25                                             # before and after the middle result
LONG = b"z" * (3 << 20) + b"\n"                         # one 3 MiB line, not a result
MID = json.dumps({"name": "mid", "value": 1.5, "unit": "s"}).encode() + b"\n"
END = json.dumps({"name": "end", "value": 2.5, "step": 7}).encode() + b"\n"
SIZE = len(HEAD) + 2 * BLOCKS * len(BLOCK) + len(MID) + len(LONG) + len(END)

WRITER = f"""
import sys
w = sys.stdout.buffer.write
block = {JUNK!r} * 1000
w({HEAD!r})
for _ in range({BLOCKS}):
    w(block)
w({MID!r})
w(b"z" * (3 << 20) + b"\\n")
for _ in range({BLOCKS}):
    w(block)
w({END!r})
sys.stderr.write("done\\n")
"""


def maxrss_mb() -> float:
    """This process's peak RSS so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_huge_non_utf8_output_parses_fully_and_its_log_is_capped(tmp_path: Path) -> None:
    after = StageResult("warmup", 0.0, data={"env_dir": str(tmp_path)})
    rss0 = maxrss_mb()
    tracemalloc.start()
    try:
        res = run_trial(after, [TrialCommand((sys.executable, "-c", WRITER))], "trial-0",
                        str(tmp_path), 120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = maxrss_mb() - rss0

    # both results, the one in the middle of ~50 MB and the last line
    assert [(r["name"], r["value"], r["step"]) for r in res.data["results"]] == [
        ("mid", 1.5, None), ("end", 2.5, 7)]
    # memory stays bounded: the output is never held whole by the driver
    assert peak < 32 * 2**20, f"traced peak {peak / 2**20:.1f} MiB"
    assert grown < 40, f"peak RSS grew by {grown:.0f} MB"

    out = tmp_path / "trial-0.stdout.log"
    log = out.read_bytes()
    limit, half = measure.LOG_LIMIT, measure.LOG_LIMIT // 2
    cut = SIZE - limit
    marker = (f"\n[... {cut} bytes truncated by bench: the log was {SIZE / 2**20:.1f} MiB "
              "...]\n").encode()
    assert len(log) == limit + len(marker)
    assert log[:half] == (HEAD + BLOCK * 5)[:half]             # the original first bytes
    assert log[half:half + len(marker)] == marker
    assert log[-(limit - half):] == (BLOCK * 5 + END)[-(limit - half):]   # the last bytes
    assert b"\xff\xfe\xc3" in log[:half] and b"\xff\xfe\xc3" in log[-(limit - half):]
    assert res.metrics["bench.log_truncated_bytes"] == cut
    assert res.data["log_truncated"] == {str(out): {"size": SIZE, "cut": cut}}
    assert (tmp_path / "trial-0.stderr.log").read_bytes() == b"done\n"   # small: kept whole


def test_small_output_is_not_truncated(tmp_path: Path) -> None:
    after = StageResult("warmup", 0.0, data={"env_dir": str(tmp_path)})
    code = "import sys; sys.stdout.buffer.write(b'\\xff\\n{\"name\": \"a\", \"value\": 1}\\n')"
    res = run_trial(after, [TrialCommand((sys.executable, "-c", code))], "trial-0",
                    str(tmp_path), 60)
    assert [r["name"] for r in res.data["results"]] == ["a"]
    assert "bench.log_truncated_bytes" not in res.metrics
    assert "log_truncated" not in res.data
    assert (tmp_path / "trial-0.stdout.log").read_bytes() == b'\xff\n{"name": "a", "value": 1}\n'


def test_truncate_log_keeps_start_end_and_raw_bytes(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "COPY_CHUNK", 7)      # copies in many chunks
    data = bytes(range(256)) * 20                      # every byte value, not UTF-8
    log = tmp_path / "x.log"
    log.write_bytes(data)
    log.chmod(0o640)
    assert truncate_log(log, 100) == len(data) - 100
    marker = (f"\n[... {len(data) - 100} bytes truncated by bench: the log was "
              "0.0 MiB ...]\n").encode()
    assert log.read_bytes() == data[:50] + marker + data[-50:]
    assert log.stat().st_mode & 0o777 == 0o640
    assert list(tmp_path.iterdir()) == [log]            # no temporary file left behind

    log.write_bytes(data[:100])                         # at the limit: kept as it is
    assert truncate_log(log, 100) == 0 and log.read_bytes() == data[:100]
    log.write_bytes(data[:110])     # cutting 10 bytes would add a longer marker: kept
    assert truncate_log(log, 100) == 0 and log.read_bytes() == data[:110]


def test_failed_command_still_has_its_logs_capped(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "LOG_LIMIT", 1000)
    after = StageResult("warmup", 0.0, data={"env_dir": str(tmp_path)})
    code = ("import sys; sys.stdout.write('o' * 20000); "
            "sys.stderr.write('e' * 20000 + '\\nthe real error\\n'); sys.exit(3)")
    with pytest.raises(StageError) as info:
        run_trial(after, [TrialCommand((sys.executable, "-c", code))], "trial-0", str(tmp_path), 60)
    assert info.value.kind == "error" and "the real error" in info.value.message
    for name in ("trial-0.stdout.log", "trial-0.stderr.log"):
        log = (tmp_path / name).read_bytes()
        assert len(log) < 1200 and b"bytes truncated by bench" in log
    assert (tmp_path / "trial-0.stderr.log").read_bytes().endswith(b"the real error\n")


def test_parse_file_streams_lines_and_rejects_overlong_results(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"\xff\xfe prose\n" + b"q" * 200_000 + b"\n"
                     + b'progress 50%\r{"name": "a", "value": 1}\r\n{"name": "b", "value": 2}')
    assert [r.name for r in parse_file(path)] == ["a", "b"]
    path.write_bytes(b'{"name": "a", "value": 1, "pad": "' + b"p" * 100_000 + b'"}\n')
    with pytest.raises(ResultParseError, match="too long"):
        parse_file(path)
    path.write_bytes(b"no results\n\xff")
    with pytest.raises(ResultParseError, match="no JSON result lines"):
        parse_file(path)
    path.write_bytes(b'ok\n{"name": "x"}\n')
    with pytest.raises(ResultParseError, match="'value'"):
        parse_file(path)


def test_parse_parsl_perf_file_matches_the_text_parser(tmp_path: Path) -> None:
    recorded = DATA / "parsl_perf_output.txt"
    path = tmp_path / "perf.log"
    path.write_bytes(b"\xff\xfe noise\n" + recorded.read_bytes())
    assert parse_parsl_perf_file(path) == parse_parsl_perf(recorded.read_text())
    path.write_bytes(b"==== Iteration 1 ====\n")
    with pytest.raises(ResultParseError, match="Tasks per second"):
        parse_parsl_perf_file(path)
