"""Config tier: composition and validation (no Parsl, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from runners.config.schema import FilesystemConfig
from runners.config.validate import validate
from runners.errors import ConfigError, fold_hydra_error
from tests.support import make


def test_default_is_local_tmpfs_mpi4py_import_tracking_local() -> None:
    cfg = make()
    assert (cfg.machine.name, cfg.fs.name, cfg.bench.name, cfg.tracking.name) == (
        "local", "tmpfs", "mpi4py_import", "local")
    assert cfg.tracking.uri.startswith("sqlite:///") and cfg.tracking.uri.endswith(
        "mlruns/mlflow.db")
    assert cfg.bench.packages == ["numpy"]
    validate(cfg)


def test_machine_declares_the_filesystems_and_fs_picks_one() -> None:
    cfg = make("fs=scratch")
    assert cfg.fs.name == "scratch"
    assert set(cfg.machine.filesystems) >= {"tmpfs", "scratch"}
    assert cfg.machine.filesystems.tmpfs.path.startswith("/dev/shm/")
    validate(cfg)


def test_scratch_root_is_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_SCRATCH", str(tmp_path))
    assert make("fs=scratch").machine.filesystems.scratch.path == str(tmp_path)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["fs=scratch", "~machine.filesystems.scratch"], "fs=scratch is not offered by machine=local"),
    (["bench.ranks=0"], "bench.ranks=0 is too small"),
    (["bench.ranks=-3"], "bench.ranks=-3 is too small"),
    (["bench.ranks=abc"], "bench.ranks='abc' is not a whole number"),
    (["bench.ranks=2.5"], "bench.ranks=2.5 is not a whole number"),
    (["bench.trials=0"], "bench.trials=0 is too small"),
    (["bench.env=nosuch"], "bench.env='nosuch' has no spec"),
    (["bench.ranks=100"], "bench.ranks=100 exceeds machine=local"),
    (["bench.packages=[numpy,'x; touch /tmp/pwned']"], "is not an importable module name"),
    (["bench.timeout_s=0"], "bench.timeout_s=0.0 must be > 0"),
])
def test_bad_values_get_one_clear_line(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(make(*overrides))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unsupported_filesystem_needs_an_image() -> None:
    cfg = make()
    OmegaConf.set_struct(cfg, False)
    cfg.machine.filesystems["shifter"] = FilesystemConfig(path="/x", supported=False,
                                                          note="no image configured")
    cfg.fs.name = "shifter"
    with pytest.raises(ConfigError, match="not supported on machine=local"):
        validate(cfg)
    cfg.machine.filesystems.shifter.image = "docker:me/img"
    validate(cfg)


def test_fold_hydra_error_lists_valid_options_on_one_line() -> None:
    text = ("In 'config': Could not find 'machine/foo'\n\nAvailable options in 'machine':\n"
            "\tlocal\n\ttheta\nConfig search path:\n\tprovider=hydra, path=pkg://hydra.conf\n\n"
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n")
    assert fold_hydra_error(text) == (
        "Could not find 'machine/foo'; valid options for machine: local, theta")
