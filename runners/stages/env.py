"""Build a benchmark environment from its spec (``envs/*.yaml``) and stage it onto the
chosen filesystem.  Run on a Parsl worker; see :mod:`runners.stages.base`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runners.stages import node_copy
from runners.stages.base import FREEZE, StageError, StageResult, check_exit, log_paths
from runners.stages.measure import run_measured, tail
from runners.stages.node_copy import MARKER, archive_of, fix_activate, is_current, locked


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


def copy_here(src: Path, dst: Path, log_dir: str, timeout_s: float,
              log_name: str = "stage") -> dict[str, Any]:
    """rsync ``src`` to ``dst`` on this node unless ``dst`` holds the same build.

    ``*.pyc`` files are not copied; the activate script is rewritten for the new place;
    the marker is copied last, so a copy cut short is never taken for current.

    Returns
    -------
    dict
        ``host``, ``mode`` (``rsync`` or ``current``), ``seconds`` and ``logs``.
    """
    t0 = time.perf_counter()
    host = socket.gethostname()
    with locked(dst):
        if is_current(src, dst):
            return {"host": host, "mode": "current", "seconds": time.perf_counter() - t0,
                    "logs": []}
        if shutil.which("rsync") is None:
            raise StageError("stage", "error", f"rsync is not installed on node {host} "
                             "(Debian: apt-get install rsync)")
        return rsync(src, dst, log_dir, timeout_s, log_name, t0)


def rsync(src: Path, dst: Path, log_dir: str, timeout_s: float, log_name: str,
          t0: float) -> dict[str, Any]:
    """The copy itself (see :func:`copy_here`), the marker last."""
    host = socket.gethostname()
    (dst / MARKER).unlink(missing_ok=True)
    out, err = log_paths(log_dir, log_name)
    argv = ["rsync", "-a", "--delete", "--exclude", "*.pyc", "--exclude", MARKER,
            f"{src}/", f"{dst}/"]
    check_exit(run_measured(argv, out, err, timeout_s, snapshot=False), "stage",
               f"rsync on {host}")
    fix_activate(dst)
    shutil.copy2(src / MARKER, dst / MARKER)
    return {"host": host, "mode": "rsync", "seconds": time.perf_counter() - t0,
            "logs": [str(out), str(err)]}


def resolve_fs_path(path: str) -> str:
    """Expand ``$VARS`` and ``~`` in a filesystem root; fail clearly when one is unset."""
    expanded = os.path.expanduser(os.path.expandvars(path))
    if "$" in expanded:
        raise StageError("stage", "error", f"filesystem path {path!r} uses a variable that is "
                         "not set on this node")
    return expanded


def stage_env(env: StageResult, fs_root: str, log_dir: str, timeout_s: float = 1800.0,
              per_node: list[str] | None = None) -> StageResult:
    """Copy the environment onto the chosen filesystem (rsync; skipped where current).

    Parameters
    ----------
    env : StageResult
        The built environment (``data["env_dir"]``).
    fs_root : str
        The filesystem's root (``$VARS`` expanded on the node).
    log_dir : str
        Where the logs go.
    timeout_s : float
        Limit of the copy (of all nodes' copies together).
    per_node : list of str, optional
        For a node-local filesystem on several nodes: the launch prefix that starts one
        task on each node of the allocation (:func:`runners.stages.launch.per_node_prefix`).
        Every node copies in parallel and is timed on its own (``stage.node.<host>_s``,
        with ``stage.node.max_s`` and ``stage.node.min_s``).  Without it, this node copies.

    Staging onto the directory the environment was built in is a no-op.
    """
    t0 = time.perf_counter()
    src = Path(env.data["env_dir"])
    dst = Path(resolve_fs_path(fs_root)) / src.name
    if dst.resolve() == src.resolve():
        return StageResult("stage", time.perf_counter() - t0, {"stage.copied": 0.0},
                           {"stage.mode": "in-place"}, [], {"env_dir": str(src)})
    if per_node:
        return stage_on_every_node(src, dst, per_node, log_dir, timeout_s)
    done = copy_here(src, dst, log_dir, timeout_s)
    metrics = {"stage.copied": float(done["mode"] == "rsync")}
    if done["mode"] == "rsync":
        metrics["stage.rsync_s"] = done["seconds"]
    return StageResult("stage", time.perf_counter() - t0, metrics, {"stage.mode": done["mode"]},
                       done["logs"], {"env_dir": str(dst)})


def stage_on_every_node(src: Path, dst: Path, per_node: list[str], log_dir: str,
                        timeout_s: float) -> StageResult:
    """One copy task per node through ``per_node`` (in parallel); each node's report
    becomes ``stage.node.<host>_s``.  A node that did not report fails the stage."""
    t0 = time.perf_counter()
    out, err = log_paths(log_dir, "stage.nodes")
    archive = archive_of(src, timeout_s)
    argv = [*per_node, sys.executable, "-I", "-S", node_copy.__file__, str(src), str(dst),
            str(archive), str(timeout_s)]
    m = run_measured(argv, out, err, timeout_s, snapshot=False)
    reports = [json.loads(line) for line in Path(out).read_text().splitlines()
               if line.startswith("{")]
    failed = [f"{r['host']}: {r['error']}" for r in reports if "error" in r]
    if failed or m.timed_out or m.returncode != 0:
        why = "; ".join(failed) or f"{' '.join(per_node)} exited {m.returncode}: {tail(err)}"
        raise StageError("stage", "timeout" if m.timed_out else "error",
                         f"staging onto every node failed: {why}", [str(out), str(err)])
    seconds = {str(r["host"]): float(r["seconds"]) for r in reports}
    metrics = {f"stage.node.{host}_s": s for host, s in sorted(seconds.items())}
    metrics.update({"stage.node.max_s": max(seconds.values()),
                    "stage.node.min_s": min(seconds.values()),
                    "stage.nodes": float(len(seconds)),
                    "stage.copied": float(sum(r["mode"] == "tar" for r in reports))})
    modes = sorted({str(r["mode"]) for r in reports})
    logs = [str(out), str(err), *(log for r in reports for log in r["logs"])]
    return StageResult("stage", time.perf_counter() - t0, metrics,
                       {"stage.mode": "per-node " + "+".join(modes),
                        "stage.hosts": ",".join(sorted(seconds))}, logs,
                       {"env_dir": str(dst), "per_node": list(per_node)})
