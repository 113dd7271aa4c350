"""ReFrame's per-test overhead: the peer figure for the sweep launcher's per-job overhead.

ReFrame lives in its own virtual environment (``<cache>/reframe-venv``), never in the
project's ``.venv``.  A trivial parameterized run-only test (``true``, local scheduler and
launcher) is run n times in one ``reframe -r``; the n = 1 run is ReFrame's start-up, so
(wall(n) - wall(1)) / (n - 1) is the amortized cost of one more test.  Every file a run
writes (stage, output, log, report, topology, temporary files) stays under its directory.

    python benchmarks/reframe_baseline.py [--n 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_line, med  # noqa: E402

SPEC = "reframe-hpc>=4.6,<5"
TEST = """import reframe as rfm
import reframe.utility.sanity as sn
from reframe.core.builtins import parameter, sanity_function

@rfm.simple_test
class TrivialTest(rfm.RunOnlyRegressionTest):
    index = parameter(range({n}))
    valid_systems = ['*']
    valid_prog_environs = ['builtin']
    executable = 'true'
    @sanity_function
    def always(self):
        return sn.assert_true(1)
"""
SETTINGS = """site_configuration = {{
    'systems': [{{'name': 'local', 'hostnames': ['.*'], 'partitions': [{{
        'name': 'default', 'scheduler': 'local', 'launcher': 'local', 'environs': ['builtin']}}]}}],
    'environments': [{{'name': 'builtin', 'cc': 'cc', 'cxx': '', 'ftn': ''}}],
    'general': [{{'topology_prefix': {topo!r}}}],
    'logging': [{{'level': {levels[0]!r}, 'handlers_perflog': [], 'handlers': [
        {{'type': 'file', 'name': {log!r}, 'level': {levels[1]!r}, 'format': {fmt!r}}},
        {{'type': 'stream', 'name': 'stdout', 'level': 'info', 'format': '%(message)s'}}]}}],
}}
"""
# (logger level, file-log level), file-log format: lean, or as in ReFrame's builtin settings
# (whose per-test %(check_info)s formatting costs ~30 ms a test here).
LOGS = {"lean": (("debug", "debug"), "[%(asctime)s] %(levelname)s: %(message)s"),
        "builtin": (("undefined", "debug2"),
                    "[%(asctime)s] %(levelname)s: %(check_info)s: %(message)s")}


def reframe_version(reframe: Path) -> str | None:
    """``reframe --version``, or None when the executable is missing or broken."""
    try:
        proc = subprocess.run([str(reframe), "--version"], capture_output=True, text=True,
                              timeout=120)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_reframe(cache: Path) -> Path:
    """Create ``<cache>/reframe-venv`` with ReFrame once (locked; rebuilt if broken).

    Parameters
    ----------
    cache : Path
        Scratch directory for the venv and its lock file.

    Returns
    -------
    Path
        Its ``reframe`` executable, checked to run ``--version``.
    """
    cache = cache.absolute()
    venv = cache / "reframe-venv"
    exe = venv / "bin" / "reframe"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "reframe-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # one builder at a time
        if reframe_version(exe) is None:
            shutil.rmtree(venv, ignore_errors=True)   # absent or broken: build anew
            python3 = shutil.which("python3") or sys.executable
            for argv in ([python3, "-m", "venv", str(venv)],
                         [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", SPEC]):
                proc = subprocess.run(argv, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{argv} failed:\n{proc.stderr[-3000:]}")
            if reframe_version(exe) is None:
                raise RuntimeError(f"{exe} --version fails after installing {SPEC!r}")
    return exe


def write_tests(directory: Path, n: int) -> Path:
    """Write ``<directory>/trivial_<n>.py``, one parameterized test of ``n`` cases; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"trivial_{n}.py"
    path.write_text(TEST.format(n=n))
    return path


def time_reframe(reframe: Path, directory: Path, n: int, serial: bool = True, *,
                 startup: dict[str, Any] | None = None, log: str = "lean") -> dict[str, Any]:
    """Run ``n`` trivial tests in one ``reframe -r`` and time it.

    Parameters
    ----------
    reframe : Path
        The ``reframe`` executable (see :func:`ensure_reframe`).
    directory : Path
        Scratch directory: test file, settings and all the run writes go under it.
    n : int
        Number of tests.
    serial : bool
        ``--exec-policy=serial`` if True, else ``async``.
    startup : dict, optional
        A :func:`time_reframe_startup` result to subtract; measured here if None and n > 1.
    log : {"lean", "builtin"}
        File-log level and format (see ``LOGS``); "builtin" is ReFrame's out-of-the-box one.

    Returns
    -------
    dict
        ``n``, ``wall_s``, ``per_test_s``, ``passed``, ``version``, ``policy``, ``log``,
        ``session_s`` (ReFrame's own elapsed time), ``cpu_s`` (user + system CPU of reframe
        and its children), ``startup_wall_s``, ``per_test_amortized_s`` (None if n = 1).
        Raises RuntimeError unless reframe exits 0 with all n tests passed.
    """
    policy = "serial" if serial else "async"
    reframe, directory = reframe.absolute(), directory.absolute()   # the run's cwd is its own
    test = write_tests(directory, n)
    run = directory / f"run-{n}-{policy}-{log}"
    shutil.rmtree(run, ignore_errors=True)
    (run / "tmp").mkdir(parents=True)
    settings, report = run / "settings.py", run / "report.json"
    levels, fmt = LOGS[log]
    settings.write_text(SETTINGS.format(topo=str(directory / "topology"),
                                        log=str(run / "reframe.log"), levels=levels, fmt=fmt))
    argv = [str(reframe), "-C", str(settings), "-c", str(test), "-r", f"--exec-policy={policy}",
            "-o", str(run / "output"), "-s", str(run / "stage"),
            "--perflogdir", str(run / "perflogs"), "--report-file", str(report)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RFM_", "PYTHON"))}
    env["TMPDIR"] = str(run / "tmp")             # ReFrame's early log file goes here
    ru0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=run)
    wall, ru = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime   # less load-sensitive
    if proc.returncode != 0:
        raise RuntimeError(f"reframe exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-2000:]}")
    data = json.loads(report.read_text())
    passed = sum(tc["result"] == "pass" for tc in data["runs"][-1]["testcases"])
    if passed != n:
        raise RuntimeError(f"{passed}/{n} tests passed; see {report}")
    if startup is None and n > 1:
        startup = time_reframe_startup(reframe, directory, serial, log=log)
    s_wall = startup["wall_s"] if startup else wall
    return {"n": n, "wall_s": wall, "per_test_s": wall / n, "passed": passed,
            "version": reframe_version(reframe), "policy": policy, "log": log,
            "session_s": data["session_info"]["time_elapsed"], "cpu_s": cpu,
            "startup_wall_s": s_wall,
            "per_test_amortized_s": (wall - s_wall) / (n - 1) if n > 1 else None}


def time_reframe_startup(reframe: Path, directory: Path, serial: bool = True,
                         log: str = "lean") -> dict[str, Any]:
    """Time the same kind of run with n = 1: ReFrame's start-up plus one test."""
    return time_reframe(reframe, directory, 1, serial, log=log)


def main() -> None:
    """Time n = 1 and n tests (serial) per file-log setting, ``--reps`` times; print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    cache, n = ROOT / ".cache" / "reframe", args.n
    reframe = ensure_reframe(cache)
    time_reframe_startup(reframe, cache / "runs")          # warm-up: topology, page cache
    rows = [time_reframe(reframe, cache / "runs", n, log=log)
            for _ in range(args.reps) for log in LOGS]     # alternate, same machine load
    cols = ["startup_wall_s", "wall_s", "per_test_s", "per_test_amortized_s", "session_s",
            "cpu_s"]
    print(f"ReFrame {rows[0]['version']} · serial · {machine_line()}\n\n| log | rep | wall n=1 "
          f"(s) | wall n={n} (s) | per test (s) | per test amortized (s) | session n={n} (s) "
          f"| CPU n={n} (s) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for log in LOGS:
        mine = [r for r in rows if r["log"] == log]
        for i, r in [*enumerate(mine, 1), ("**median**", {c: med([r[c] for r in mine])
                                                          for c in cols})]:
            print(f"| {log} | {i} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
