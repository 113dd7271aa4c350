"""Hydra's own launcher contract suites, run against the Parsl launcher (hydra/launcher=parsl).

These are the suites Hydra's launcher plugins adopt (``hydra/test_utils/
launcher_common_tests.py``): sweep directories, ``.hydra/`` files, job numbers,
overrides, return values, task names and working directories.
"""

from __future__ import annotations

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from pytest import mark

from hydra_plugins.bench_launcher.parsl_launcher import ParslLauncher


def test_the_launcher_is_discovered_as_a_hydra_plugin() -> None:
    names = [f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)]
    assert f"{ParslLauncher.__module__}.ParslLauncher" in names


@mark.parametrize("launcher_name, overrides", [("parsl", [])])
class TestParslLauncher(LauncherTestSuite):
    """The in-process launcher contract."""


@mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=parsl"])])
class TestParslLauncherIntegration(IntegrationTestSuite):
    """The contract through real ``python my_app.py -m`` processes."""
