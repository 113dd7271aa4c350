"""Build a benchmark environment from its spec (``envs/*.yaml``) and stage it onto the
chosen filesystem.  Run on a Parsl worker; see :mod:`runners.stages.base`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runners.stages.base import FREEZE, MARKER, StageError, StageResult, check_exit, log_paths
from runners.stages.measure import run_measured


def spec_hash(spec_text: str) -> str:
    """Content hash of an environment spec, salted with the interpreter it is built for."""
    salt = f"{platform.python_version()}|{platform.machine()}|{sys.base_prefix}"
    return hashlib.sha256((spec_text + salt).encode()).hexdigest()[:12]


def load_spec(spec_path: str) -> tuple[dict[str, Any], str]:
    import yaml

    text = Path(spec_path).read_text()
    spec = yaml.safe_load(text) or {}
    if not isinstance(spec, dict) or not spec.get("name") or not spec.get("packages"):
        raise StageError("env", "error", f"{spec_path}: a spec needs 'name' and 'packages'")
    return spec, text


def build_env(spec_path: str, env_root: str, log_dir: str,
              timeout_s: float = 1800.0) -> StageResult:
    """Build (or reuse) a relocatable virtual environment from a spec in ``envs/``.

    The environment lives at ``<env_root>/<name>-<hash>``; it is rebuilt only when the
    spec's content hash changes.  Interpreter files are copied, not symlinked.  A spec's
    ``sources`` (package names) get the source distribution of the version installed,
    unpacked under ``<env>/src/<name>/`` (e.g. mpi4py's ``demo/`` programs).
    """
    t0 = time.perf_counter()
    spec, text = load_spec(spec_path)
    digest = spec_hash(text)
    env_dir = Path(env_root) / f"{spec['name']}-{digest}"
    out, err = log_paths(log_dir, "env")
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{env_dir}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = (env_dir / MARKER).is_file()
        if not cached:
            if env_dir.exists():
                shutil.rmtree(env_dir)   # a build that died half-way
            python = spec.get("python") or sys.executable
            for argv in ([python, "-m", "venv", "--copies", str(env_dir)],
                         [str(env_dir / "bin" / "python"), "-m", "pip", "install",
                          "--disable-pip-version-check", "--no-input", *spec["packages"]]):
                m = run_measured(argv, out, err, timeout_s, snapshot=False)
                check_exit(m, "env", " ".join(argv[:4]))
                out, err = log_paths(log_dir, "env.pip")
            for name in spec.get("sources") or []:
                unpack_source(env_dir, str(name), log_dir, timeout_s)
            freeze = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "freeze"],
                                    capture_output=True, text=True, check=True)
            (env_dir / FREEZE).write_text(freeze.stdout)
            (env_dir / MARKER).write_text(json.dumps({"hash": digest, "spec": spec}))
    logs = [str(p) for p in Path(log_dir).glob("env*.log")]
    return StageResult("env", time.perf_counter() - t0, {"env.cached": float(cached)},
                       {"env.hash": digest}, logs + [str(env_dir / FREEZE)],
                       {"env_dir": str(env_dir), "hash": digest})


def unpack_source(env_dir: Path, name: str, log_dir: str, timeout_s: float) -> Path:
    """Download the sdist of the installed version of ``name`` and unpack it into
    ``<env>/src/<name>/`` (the archive's top folder dropped)."""
    import tarfile

    python = str(env_dir / "bin" / "python")
    version = subprocess.run([python, "-c", "import importlib.metadata as m, sys; "
                              "print(m.version(sys.argv[1]))", name], capture_output=True,
                             text=True, timeout=120)
    if version.returncode != 0:
        raise StageError("env", "error", f"source {name!r}: it is not installed in the "
                         "environment; add it to the spec's packages")
    sdists = env_dir / "src" / ".sdist"
    out, err = log_paths(log_dir, f"env.source.{name}")
    argv = [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--no-binary", ":all:", "--no-deps", "-d", str(sdists),
            f"{name}=={version.stdout.strip()}"]
    check_exit(run_measured(argv, out, err, timeout_s, snapshot=False), "env",
               f"pip download {name}")
    (archive,) = sdists.glob("*.tar.gz")
    dest = env_dir / "src" / name
    with tarfile.open(archive) as tar:
        tar.extractall(sdists / "unpacked", filter="data")
    (top,) = (sdists / "unpacked").iterdir()
    top.rename(dest)
    shutil.rmtree(sdists)
    return dest


def fix_activate(env_dir: Path) -> None:
    """Point the activate scripts' ``VIRTUAL_ENV`` at the environment's current location."""
    rules = {"activate": (r'^VIRTUAL_ENV=.*$', f'VIRTUAL_ENV="{env_dir}"'),
             "activate.csh": (r'^setenv VIRTUAL_ENV .*$', f'setenv VIRTUAL_ENV "{env_dir}"'),
             "activate.fish": (r'^set -gx VIRTUAL_ENV .*$', f'set -gx VIRTUAL_ENV "{env_dir}"')}
    for name, (pattern, line) in rules.items():
        script = env_dir / "bin" / name
        if script.is_file():
            text = re.sub(pattern, line.replace("\\", "\\\\"), script.read_text(), flags=re.M)
            script.write_text(text)


def resolve_fs_path(path: str) -> str:
    """Expand ``$VARS`` and ``~`` in a filesystem root; fail clearly when one is unset."""
    expanded = os.path.expanduser(os.path.expandvars(path))
    if "$" in expanded:
        raise StageError("stage", "error", f"filesystem path {path!r} uses a variable that is "
                         "not set on this node")
    return expanded


def stage_env(env: StageResult, fs_root: str, log_dir: str,
              timeout_s: float = 1800.0) -> StageResult:
    """Copy the environment onto the chosen filesystem with rsync (skip when current).

    ``*.pyc`` files are not copied; the activate script is rewritten for the new place.
    Staging onto the directory it was built in is a no-op.
    """
    t0 = time.perf_counter()
    src = Path(env.data["env_dir"])
    dst = Path(resolve_fs_path(fs_root)) / src.name
    if dst.resolve() == src.resolve():
        return StageResult("stage", time.perf_counter() - t0, {"stage.copied": 0.0},
                           {"stage.mode": "in-place"}, [], {"env_dir": str(src)})
    if (dst / MARKER).is_file() and (dst / MARKER).read_text() == (src / MARKER).read_text():
        return StageResult("stage", time.perf_counter() - t0, {"stage.copied": 0.0},
                           {"stage.mode": "current"}, [], {"env_dir": str(dst)})
    if shutil.which("rsync") is None:
        raise StageError("stage", "error", "rsync is not installed on this node "
                         "(Debian: apt-get install rsync)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    (dst / MARKER).unlink(missing_ok=True)
    out, err = log_paths(log_dir, "stage")
    argv = ["rsync", "-a", "--delete", "--exclude", "*.pyc", "--exclude", MARKER,
            f"{src}/", f"{dst}/"]
    m = run_measured(argv, out, err, timeout_s, snapshot=False)
    check_exit(m, "stage", "rsync")
    fix_activate(dst)
    shutil.copy2(src / MARKER, dst / MARKER)
    return StageResult("stage", time.perf_counter() - t0,
                       {"stage.copied": 1.0, "stage.rsync_s": m.wall_s}, {"stage.mode": "rsync"},
                       [str(out), str(err)], {"env_dir": str(dst)})
