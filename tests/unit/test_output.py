"""How a command's output becomes results: declared patterns and sanity lines
(runners/stages/output.py), JSON lines by default, a kind's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.stages.output import (
    MetricRule,
    Output,
    SanityError,
    SanityRule,
    check_pattern,
    check_sanity,
    read_patterns,
)
from runners.stages.results import Result, ResultParseError

TABLE = "# OSU MPI Latency Test\n# Size  Latency (us)\n0   1.25\n1   1.50\n2   \u00e9\n4   2.00\n"
ROW = MetricRule("latency", r"^\s*(?P<step>\d+)\s+(?P<value>\d+\.\d+)\s*$", "us", "lower")


def out(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "stdout.log"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_metric_rule_reads_every_matching_line_with_its_step(tmp_path: Path) -> None:
    results = read_patterns(out(tmp_path, TABLE), (ROW,))
    assert results == [Result("latency", v, "us", "lower", s)
                       for s, v in ((0, 1.25), (1, 1.5), (4, 2.0))]


def test_a_rule_without_a_step_and_several_rules(tmp_path: Path) -> None:
    text = "Copy: 12.5 GB/s\nTriad: 10.25 GB/s\nCopy: 13.0 GB/s\n"
    rules = (MetricRule("copy", r"^Copy: (?P<value>[\d.]+)", "GB/s", "higher"),
             MetricRule("triad", r"^Triad: (?P<value>[\d.]+)", "GB/s", "higher"))
    results = read_patterns(out(tmp_path, text), rules)
    assert [(r.name, r.value, r.step) for r in results] == [
        ("copy", 12.5, None), ("triad", 10.25, None), ("copy", 13.0, None)]


def test_a_rule_that_never_matches_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ResultParseError, match="metric 'bw' never matched"):
        read_patterns(out(tmp_path, TABLE), (ROW, MetricRule("bw", r"^BW (?P<value>\d+)")))


def test_a_match_that_is_not_a_number_is_a_parse_error(tmp_path: Path) -> None:
    rule = MetricRule("x", r"^x=(?P<value>\S+)$")
    with pytest.raises(ResultParseError, match="not a finite number"):
        read_patterns(out(tmp_path, "x=fast\n"), (rule,))
    with pytest.raises(ResultParseError, match="not a finite number"):
        read_patterns(out(tmp_path, "x=inf\n"), (rule,))


def test_undecodable_bytes_do_not_stop_the_patterns(tmp_path: Path) -> None:
    text = b"\xff\xfe junk\n  8   3.50\n"
    assert [r.value for r in read_patterns(out(tmp_path, text), (ROW,))] == [3.5]


def test_sanity_lines(tmp_path: Path) -> None:
    path = out(tmp_path, TABLE)
    check_sanity(path, (SanityRule("^# OSU MPI Latency Test"), SanityRule("Traceback", True)))
    with pytest.raises(SanityError, match="expected pattern 'Bandwidth' not found"):
        check_sanity(path, (SanityRule("Bandwidth"),))
    with pytest.raises(SanityError, match="forbidden pattern 'Latency' found"):
        check_sanity(path, (SanityRule("Latency", absent=True),))


def test_output_reads_json_lines_patterns_or_a_kinds_parser(tmp_path: Path) -> None:
    path = out(tmp_path, '{"name": "a", "value": 1}\n0   1.25\n')
    assert [r.name for r in Output().read(path)] == ["a"]
    assert [r.name for r in Output(json=False, metrics=(ROW,)).read(path)] == ["latency"]
    assert Output(parse=lambda p: [Result("own", 2.0)]).read(path) == [Result("own", 2.0)]
    with pytest.raises(SanityError):
        Output(sanity=(SanityRule("missing"),)).read(path)


@pytest.mark.parametrize(("pattern", "groups", "message"), [
    ("(unclosed", ("value",), "is not a regular expression"),
    (r"x (\d+)", ("value",), "has no named group 'value'"),
])
def test_check_pattern_says_what_is_wrong(pattern: str, groups: tuple[str, ...],
                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_pattern(pattern, "bench.metrics[0].pattern", groups)
    assert check_pattern(r"(?P<value>\d+)", "p", ("value",)).groupindex["value"] == 1
