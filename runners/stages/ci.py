"""The mpi4py CI pipeline's stages (seed 000): build from source → sanity → deploy.

Run on a Parsl worker (see :mod:`runners.stages.base`); each raises StageError with its kind.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
import time
from pathlib import Path

from runners.stages.base import FREEZE, StageError, StageResult, check_exit, log_paths
from runners.stages.env import load_spec, spec_hash
from runners.stages.measure import read_text, run_measured
from runners.stages.node_copy import MARKER, fix_activate

BENCH_DIR = Path(__file__).resolve().parent.parent / "benches"


def build_from_source(spec_path: str, build_root: str, log_dir: str,
                      timeout_s: float = 1800.0) -> StageResult:
    """Build cython and mpi4py from their source distributions into a fresh environment.

    The spec names ``binary`` packages (installed as wheels: the ``mpich`` wheel for a
    local MPI, numpy) and ``source`` packages (downloaded as sdists from the package index
    and built here; mpi4py against the environment's ``mpicc``).  Every build gets a new
    id, so a build never overwrites another.
    """
    t0 = time.perf_counter()
    spec, text = load_spec(spec_path)
    build_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{spec_hash(text)[:8]}-{os.getpid()}"
    root = Path(build_root) / "builds" / build_id
    env_dir, sdist_dir = root / "env", root / "sdist"
    sdist_dir.mkdir(parents=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check",
           "--no-input"]
    env = dict(os.environ, MPICC=str(env_dir / "bin" / "mpicc"), NO_CYTHON_COMPILE="true",
               PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    steps = [
        ("venv", [sys.executable, "-m", "venv", "--copies", str(env_dir)]),
        ("binary", [*pip, "install", *spec.get("binary", [])]),
        ("download", [*pip, "download", "--no-binary", ":all:", "--no-deps", "-d",
                      str(sdist_dir), *spec.get("source", [])]),
    ]
    logs: list[str] = []
    for name, argv in steps:
        out, err = log_paths(log_dir, f"build.{name}")
        logs += [str(out), str(err)]
        m = run_measured(argv, out, err, timeout_s, env=env, snapshot=False)
        check_exit(m, "build", name)
    sdists = sorted(sdist_dir.iterdir())
    order = sorted(sdists, key=lambda p: not p.name.lower().startswith("cython"))
    for sdist in order:      # cython first: mpi4py's build needs it
        out, err = log_paths(log_dir, f"build.{sdist.name.split('-')[0].lower()}")
        logs += [str(out), str(err)]
        m = run_measured([*pip, "install", "--no-build-isolation", "--no-deps", "-v",
                          str(sdist)], out, err, timeout_s, env=env, snapshot=False)
        try:
            check_exit(m, "build", f"building {sdist.name}")
        except StageError as exc:
            raise StageError("build", "build", exc.message, logs) from None
    freeze = run_measured([*pip, "freeze"], env_dir / FREEZE, root / "freeze.err", 120,
                          snapshot=False)
    check_exit(freeze, "build", "pip freeze")
    (env_dir / MARKER).write_text(f'{{"build_id": "{build_id}"}}')
    return StageResult("build", time.perf_counter() - t0, {"build.sdists": float(len(sdists))},
                       {"build.id": build_id, "build.sdists": " ".join(p.name for p in sdists)},
                       logs + [str(env_dir / FREEZE)],
                       {"env_dir": str(env_dir), "build_id": build_id})


def sanity(build: StageResult, launch: list[str], pattern: str, log_dir: str,
           timeout_s: float = 300.0) -> StageResult:
    """Run the print-rank program on the build and match its output against ``pattern``.

    Like the seed's ``grep -q``: no match is a ``sanity`` failure, and nothing is deployed.
    """
    t0 = time.perf_counter()
    env_dir = build.data["env_dir"]
    argv = [a.replace("{env}", env_dir) for a in launch]
    argv += [f"{env_dir}/bin/python", str(BENCH_DIR / "print_rank.py")]
    out, err = log_paths(log_dir, "sanity")
    m = run_measured(argv, out, err, timeout_s, snapshot=False)
    text = read_text(out)
    if m.timed_out or m.returncode != 0 or not re.search(pattern, text):
        got = " | ".join(text.strip().splitlines()[-4:]) or read_text(err)[-300:]
        raise StageError("sanity", "timeout" if m.timed_out else "sanity",
                         f"output did not match {pattern!r} (exit {m.returncode}): {got}",
                         [str(out), str(err)])
    return StageResult("sanity", time.perf_counter() - t0, {"sanity.ranks_ok": 1.0},
                       {}, [str(out), str(err)], dict(build.data))


def deploy(checked: StageResult, release_root: str, log_dir: str) -> StageResult:
    """Copy a build that passed its sanity check to ``<release_root>/<build id>``."""
    t0 = time.perf_counter()
    src = Path(checked.data["env_dir"])
    dst = Path(release_root) / str(checked.data["build_id"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, symlinks=True)
    fix_activate(dst)
    latest = Path(release_root) / "latest"
    tmp = latest.with_name(f".latest.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(dst.name)
    tmp.replace(latest)
    out, _ = log_paths(log_dir, "deploy")
    out.write_text(f"deployed {src} -> {dst}\n")
    return StageResult("deploy", time.perf_counter() - t0, {}, {"deploy.path": str(dst)},
                       [str(out)], {"env_dir": str(dst), "build_id": checked.data["build_id"]})


