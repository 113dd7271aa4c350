"""Benchmark kinds, found by the tests themselves: every kind of the registry and every
benchmark YAML of ``conf/bench/`` composes, validates and plans a dry run; a kind that
cannot be found or a pattern that cannot serve is one line of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runners.config.validate import validate
from runners.errors import ConfigError
from runners.kinds.base import Kind, Merit
from runners.kinds.registry import kind_class, names, registry
from runners.stages.output import Output
from tests.support import CONF, RunPy, Store, make

BENCHES = sorted(p.stem for p in (CONF / "bench").glob("*.yaml"))


def test_the_registry_finds_the_built_in_kinds() -> None:
    kinds, broken = registry()
    assert {"command", "mpi4py_ci", "mpi4py_import", "osu", "parsl_perf"} <= set(kinds)
    assert not broken
    for name, cls in kinds.items():
        assert issubclass(cls, Kind) and cls.name == name
        assert cls.schema.__dataclass_fields__["kind"].default == name


@pytest.mark.parametrize("kind", names())
def test_every_kind_composes_validates_and_plans(kind: str, tmp_path: Path) -> None:
    """``bench=<kind>`` (its YAML, or its schema when it has none) on machine=local."""
    cfg = make(f"bench={kind}", "bench.ranks=2")
    found = validate(cfg)
    assert type(found) is kind_class(kind) and found.bench.kind == kind
    commands = found.commands("<env>")
    assert commands and all(c.argv and isinstance(c.output, Output) for c in commands)
    assert all(isinstance(line, str) for line in found.plan(tmp_path))
    assert isinstance(found.xlabel(), str)
    merits = found.merits([{"name": "x_s", "value": 1.0, "unit": "s", "direction": "lower"}])
    assert merits and all(isinstance(m, Merit) for m in merits)
    assert all(m.direction in ("lower", "higher") for m in merits)


@pytest.mark.parametrize("bench", BENCHES)
def test_every_benchmark_yaml_validates(bench: str) -> None:
    cfg = make(f"bench={bench}")
    kind = validate(cfg)
    assert kind.bench.name == bench
    assert kind.name in names()


@pytest.mark.parametrize(("overrides", "expected"), [
    (["bench.kind=nosuch"], "bench.kind='nosuch' is not a registered kind; registered: "
                            "command, mpi4py_ci, mpi4py_import, osu, parsl_perf"),
    (["bench.kind=nosuch_module_xyz:Kind"], "cannot import nosuch_module_xyz: "
                                            "ModuleNotFoundError"),
    (["bench.kind=runners.kinds.osu:NoSuch"], "runners.kinds.osu has no Kind subclass named "
                                              "'NoSuch'"),
])
def test_an_unknown_kind_is_one_line(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(make(*overrides))
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("(?P<value>[0-9.+", "is not a regular expression"),
    (r"latency (\d+)", "has no named group 'value'"),
])
def test_a_metric_pattern_that_cannot_serve_is_one_line(pattern: str, expected: str) -> None:
    cfg = make("bench=command", "bench.command='{python} -c pass'",
               f"+bench.metrics=[{{name: lat, pattern: '{pattern}'}}]")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert expected in str(info.value) and "bench.metrics[0].pattern" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_pattern_naming_a_command_that_does_not_exist() -> None:
    cfg = make("bench=command", "bench.command=", "+bench.commands={a: 'true', b: 'true'}",
               "+bench.sanity=[{pattern: ok, command: c}]")
    with pytest.raises(ConfigError, match=r"bench.sanity\[0\].command='c' names no command"):
        validate(cfg)


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "expected"), [
    (["bench.kind=nosuch"], "is not a registered kind; registered: command"),
    (["bench.kind=json.decoder:NoKind"], "json.decoder has no Kind subclass named 'NoKind'"),
    (["bench=command", "+bench.metrics=[{name: lat, pattern: 'no group'}]"],
     "has no named group 'value'"),
])
def test_bad_kind_input_exits_2_with_nothing_recorded(run_py: RunPy, store: Store,
                                                      args: list[str], expected: str) -> None:
    proc = run_py(*args, *store.overrides(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not store.db.exists()


#: ``config.hash`` of each benchmark YAML as the commit before kinds (0e88e82) computed it,
#: with project_root=/fixed: a run's series must keep its identity across the upgrade.
HASHES = {"command": "ace563f317dfc46a", "mpi4py_ci": "1d2a5d56184180d0",
          "mpi4py_import": "4a3def9a081b0add", "osu": "15c689b23089bc8e",
          "parsl_perf": "772faa64a3a07c49", "sleep": "03adc8bb9d4efb2a"}


@pytest.mark.parametrize("bench", sorted(HASHES))
def test_the_config_hash_of_every_benchmark_is_kept(bench: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from runners.kinds.registry import kind_of
    from runners.run.lifecycle import config_hash

    monkeypatch.setenv("USER", "bench")
    for var in ("BENCH_SCRATCH", "BENCH_CACHE", "NERSC_ACCOUNT", "ALCF_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    cfg = make(f"bench={bench}", "project_root=/fixed", "cache_root=/fixed/.cache")
    kind = kind_of(cfg)
    resolved: Any = OmegaConf.to_container(cfg, resolve=True)
    assert config_hash(resolved, kind) == HASHES[bench]
    with_patterns = make(f"bench={bench}", "project_root=/fixed", "cache_root=/fixed/.cache",
                         "+bench.sanity=[{pattern: ok}]") if bench in ("command", "sleep") \
        else None
    if with_patterns is not None:     # a field that is set does enter the hash
        other: Any = OmegaConf.to_container(with_patterns, resolve=True)
        assert config_hash(other, kind_of(with_patterns)) != HASHES[bench]
