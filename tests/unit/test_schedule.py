"""``bench schedule``: periods to cron fields, crontab lines, quoting and the CLI verb."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from runners.cli.schedule import add_parser, crontab_lines, crontab_text, parse_period
from tests.support import require_tool

PROJECT = Path("/opt/bench project")
PYTHON = PROJECT / ".venv" / "bin" / "python"
LOGS = PROJECT / "logs"

_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_ITEM = re.compile(r"^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$")


def _cron_field_ok(field: str, low: int, high: int) -> bool:
    """Whether one cron field (``*``, ``N``, ``N-M``, any with ``/S``, comma lists) is valid."""
    for item in field.split(","):
        m = _ITEM.match(item)
        if m is None:
            return False
        values = [int(v) for v in (m.group(2), m.group(3)) if v is not None]
        if any(not low <= v <= high for v in values):
            return False
        if m.group(4) is not None and int(m.group(4)) == 0:
            return False
    return True


def _check_cron_line(line: str) -> str:
    """Assert a crontab line is 5 valid time fields then a command; return the command."""
    parts = line.split(None, 5)
    assert len(parts) == 6, line
    for field, (low, high) in zip(parts[:5], _RANGES, strict=True):
        assert _cron_field_ok(field, low, high), (field, line)
    return parts[5]


def _argv(line: str) -> list[str]:
    """The run.py argv of a line: the words after ``flock -n LOCK`` up to ``>>``."""
    words = shlex.split(_check_cron_line(line))
    start = words.index("flock") + 3
    return words[start:words.index(">>")]


@pytest.mark.parametrize(("period", "fields"), [
    ("15m", "*/15 * * * *"),
    ("30m", "*/30 * * * *"),
    ("1m", "* * * * *"),
    ("60m", "20 * * * *"),
    ("1h", "20 * * * *"),
    ("6h", "20 */6 * * *"),
    ("12H", "20 */12 * * *"),
    ("24h", "20 3 * * *"),
    ("1d", "20 3 * * *"),
    ("daily", "20 3 * * *"),
    ("1w", "20 3 * * 0"),
    ("weekly", "20 3 * * 0"),
    ("  */10 2-5 * * 1,3 ", "*/10 2-5 * * 1,3"),
])
def test_parse_period_forms(period: str, fields: str) -> None:
    assert parse_period(period, minute=20) == fields


def test_parse_period_default_minute_is_zero() -> None:
    assert parse_period("6h") == "0 */6 * * *"


@pytest.mark.parametrize(("period", "words"), [
    ("7h", ["does not divide a day", "6h", "12h", "Nm", "1d", "1w", "cron"]),
    ("0h", ["zero", "6h", "1d"]),
    ("abc", ["not understood", "6h", "Nm", "1d", "1w", "cron"]),
    ("90m", ["does not divide an hour", "15", "30", "1d"]),
    ("2d", ["not supported", "1d"]),
    ("* * * *", ["4 fields, expected 5"]),
    ("* * * * mon", ["0-9 * / , -"]),
    ("", ["not understood"]),
])
def test_parse_period_rejects(period: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_period(period)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_lines_have_the_documented_shape() -> None:
    [line] = crontab_lines(["6h:bench.ranks=1,2 bench.trials=3"], PROJECT, PYTHON, LOGS)
    assert line.startswith("0 */6 * * * cd '/opt/bench project' && ")
    words = shlex.split(_check_cron_line(line))
    assert words[words.index("flock"):words.index("flock") + 3] == [
        "flock", "-n", str(PROJECT / ".cache" / "cron.lock")]
    assert _argv(line) == [str(PYTHON), "run.py", "-m", "select=random",
                           "bench.ranks=1,2", "bench.trials=3"]
    assert words[-3:] == [">>", str(LOGS / "cron-6h.log"), "2>&1"]
    assert not any(w.startswith("seed=") for w in words)


def test_custom_lock_and_slugs() -> None:
    lock = Path("/var/lock/bench.lock")
    lines = crontab_lines(["1d:bench=osu", "*/5 * * * *:", "daily:", "6h:"],
                          PROJECT, PYTHON, LOGS, lock=lock)
    logs = [shlex.split(line)[-2] for line in lines]
    assert logs == [str(LOGS / f"cron-{s}.log") for s in ("1d", "cron1", "1d-2", "6h")]
    assert all(f"flock -n {lock} " in line for line in lines)


def test_start_minutes_are_staggered() -> None:
    lines = crontab_lines(["6h:bench.ranks=1", "6h:bench.ranks=2", "1d:", "1w:", "15m:"],
                          PROJECT, PYTHON, LOGS)
    minutes = [line.split()[0] for line in lines]
    assert minutes == ["0", "20", "40", "0", "*/15"]
    assert minutes[0] != minutes[1]
    assert lines[2].split()[:5] == ["40", "3", "*", "*", "*"]
    assert lines[3].split()[:5] == ["0", "3", "*", "*", "0"]


def test_empty_overrides_run_the_default_job() -> None:
    [line] = crontab_lines(["1h:"], PROJECT, PYTHON, LOGS)
    assert _argv(line) == [str(PYTHON), "run.py", "-m", "select=random"]


def test_hostile_value_stays_one_quoted_word() -> None:
    hostile = "bench.packages=[numpy,'x; touch /tmp/pwned']"
    [line] = crontab_lines([f"6h:{hostile} bench.trials=$(reboot)"], PROJECT, PYTHON, LOGS)
    argv = _argv(line)
    assert argv[4:] == ["bench.packages=[numpy,x; touch /tmp/pwned]", "bench.trials=$(reboot)"]
    # The ';' and '$(' only ever appear inside single quotes.
    assert "'bench.packages=[numpy,x; touch /tmp/pwned]'" in line
    assert "'bench.trials=$(reboot)'" in line


def test_percent_is_escaped_for_cron() -> None:
    [line] = crontab_lines(["6h:run_name=at_%H"], PROJECT, PYTHON, LOGS)
    assert "%" not in line.replace("\\%", "")


def test_command_really_runs_under_a_shell(tmp_path: Path) -> None:
    """The command part, run by sh as cron would, passes each override as one argv item."""
    require_tool("flock")
    project = tmp_path / "proj ect"
    project.mkdir()
    (project / "run.py").write_text("")
    marker = tmp_path / "pwned"
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    hostile = f"bench.packages=[numpy,'x; touch {marker}']"
    logs = tmp_path / "logs"
    [line] = crontab_lines([f"6h:{hostile} bench.trials=3"], project, fake, logs)
    subprocess.run(["sh", "-c", _check_cron_line(line)], check=True, timeout=30)
    assert not marker.exists()
    assert (logs / "cron-6h.log").read_text().splitlines() == [
        "run.py", "-m", "select=random", f"bench.packages=[numpy,x; touch {marker}]",
        "bench.trials=3"]
    assert (project / ".cache" / "cron.lock").exists()


@pytest.mark.parametrize("overrides", [
    "bench.ranks=1,2 seed=3", "+seed=3", "-m bench.ranks=1", "--multirun", "select=random",
])
def test_rejects_what_the_schedule_adds(overrides: str) -> None:
    with pytest.raises(ValueError) as info:
        crontab_lines([f"6h:{overrides}"], PROJECT, PYTHON, LOGS)
    message = str(info.value)
    assert "\n" not in message
    assert "select=random itself" in message or "seed" in message or "-m" in message


def test_seed_message_says_why() -> None:
    with pytest.raises(ValueError, match="every draw the same"):
        crontab_lines(["6h:seed=1"], PROJECT, PYTHON, LOGS)


def test_a_bench_seed_key_is_not_the_draw_seed() -> None:
    [line] = crontab_lines(["6h:bench.seed=1"], PROJECT, PYTHON, LOGS)
    assert _argv(line)[-1] == "bench.seed=1"


@pytest.mark.parametrize(("entry", "word"), [
    ("bench.ranks=1,2", "no ':'"),
    (":bench.ranks=1,2", "empty period"),
    ("7h:bench.ranks=1", "does not divide a day"),
    ("6h:bench.name='unclosed", "cannot split"),
    ("6h:a=1\nb=2", "one line"),
])
def test_rejects_bad_entries(entry: str, word: str) -> None:
    with pytest.raises(ValueError, match=re.escape(word)) as info:
        crontab_lines([entry], PROJECT, PYTHON, LOGS)
    assert "\n" not in str(info.value)


def test_crontab_text_is_a_valid_crontab() -> None:
    text = crontab_text(["15m:bench.ranks=1", "6h:bench.ranks=1,2 bench.trials=3",
                         "1d:bench=osu bench.ranks=2,4 bench.trials=10", "weekly:",
                         "5,35 */2 1-15 * 1-5:bench.trials=1"], PROJECT, PYTHON, LOGS)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("# bench schedule: random draws from the sweep matrix; "
                               "install with: crontab -l | cat - ")
    commands = [_check_cron_line(line) for line in lines
                if line.strip() and not line.startswith("#")]
    assert len(commands) == 5
    assert all("run.py -m select=random" in c for c in commands)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    v = p.add_subparsers(dest="verb")
    add_parser(v)
    return p


def test_verb_prints_crontab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    args = _parser().parse_args(["schedule", "6h:bench.ranks=1,2", "1d:bench=osu",
                                 "--project", str(tmp_path)])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    assert lines[0].startswith(f"0 */6 * * * cd {tmp_path} && ")
    assert lines[1].startswith("20 3 * * * ")
    assert _argv(lines[0]) == [str(venv_python), "run.py", "-m", "select=random",
                               "bench.ranks=1,2"]
    assert f">> {tmp_path / 'logs' / 'cron-1d.log'} 2>&1" in lines[1]


def test_verb_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from runners.config.schema import PROJECT_ROOT

    args = _parser().parse_args(["schedule", "1h:", "--python", "/usr/bin/python3",
                                 "--log-dir", "/var/log/bench"])
    assert args.project == PROJECT_ROOT
    assert args.func(args) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("#")]
    assert _argv(line)[0] == "/usr/bin/python3"
    assert ">> /var/log/bench/cron-1h.log 2>&1" in line


def test_verb_bad_period_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["schedule", "7h:bench.ranks=1"])
    assert args.func(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "7h" in err and "1d" in err


def test_a_nightly_entry_calls_bench_nightly(tmp_path: Path) -> None:
    [line] = crontab_lines(["1d:nightly --repo https://example.org/x.git --ref main"],
                           tmp_path, tmp_path / "py", tmp_path / "logs")
    argv = shlex.split(line.split(" ", 5)[5])
    i = argv.index("runners.cli")
    assert argv[i - 2:i + 6] == [str(tmp_path / "py"), "-m", "runners.cli", "nightly",
                                 "--repo", "https://example.org/x.git", "--ref", "main"]
    assert line.startswith("0 3 * * * ") and "cron-nightly-1d.log" in line
