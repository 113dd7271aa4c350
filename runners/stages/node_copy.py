"""Stage a built environment onto *this* node's filesystem (skipped when the copy there
is current).  Standard library only: it runs as a light program on every node.

For a node-local filesystem :func:`runners.stages.env.stage_env` starts this file as one
task per node of the allocation through the machine's launcher (``srun -N 4
--ntasks-per-node=1 python -I -S node_copy.py SRC DST ARCHIVE TIMEOUT``): each task
unpacks one tarball
of the environment, made once and read from the shared filesystem (one large read per
node instead of the environment's many small files, as centres advise for node-local
storage), and prints one JSON line: its host, what it did and how long it took.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The file that marks a complete environment (its spec hash).
MARKER = ".bench-env.json"


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


def archive_of(src: Path, timeout_s: float) -> Path:
    """``<env>.tar`` beside the environment (no ``*.pyc``, no marker), made once per build:
    every node reads this one file from the shared filesystem instead of the environment's
    thousands of small files (the metadata load mpi4py-import measures)."""
    archive = src.parent / f"{src.name}.tar"
    stamp = src.parent / f"{src.name}.tar.marker"
    with open(f"{archive}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and stamp.is_file() and stamp.read_text() == (
                src / MARKER).read_text():
            return archive
        tmp = archive.with_suffix(".tar.tmp")
        subprocess.run(["tar", "--exclude=*.pyc", f"--exclude=./{MARKER}", "-cf", str(tmp),
                        "-C", str(src), "."], check=True, capture_output=True,
                       timeout=timeout_s)
        tmp.replace(archive)
        stamp.write_text((src / MARKER).read_text())
    return archive


@contextlib.contextmanager
def locked(dst: Path) -> Iterator[None]:
    """One copy at a time into ``dst`` (the jobs of a sweep stage concurrently)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{dst}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def is_current(src: Path, dst: Path) -> bool:
    """``dst`` holds a complete copy of the same build as ``src``."""
    return (dst / MARKER).is_file() and (dst / MARKER).read_text() == (src / MARKER).read_text()


def extract_here(src: Path, dst: Path, archive: Path, timeout_s: float) -> dict[str, Any]:
    """Unpack ``archive`` into ``dst`` on this node unless ``dst`` holds the same build."""
    t0 = time.perf_counter()
    host = socket.gethostname()
    with locked(dst):
        if is_current(src, dst):
            return {"host": host, "mode": "current", "seconds": time.perf_counter() - t0,
                    "logs": []}
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir()
        out = subprocess.run(["tar", "-xf", str(archive), "-C", str(dst)], capture_output=True,
                             text=True, timeout=timeout_s)
        if out.returncode != 0:
            raise RuntimeError(f"tar -xf {archive} on {host} exited {out.returncode}: "
                               f"{out.stderr.strip()[-300:]}")
        fix_activate(dst)
        shutil.copy2(src / MARKER, dst / MARKER)
    return {"host": host, "mode": "tar", "seconds": time.perf_counter() - t0, "logs": []}


def main(argv: list[str]) -> int:
    """``SRC DST ARCHIVE TIMEOUT_S``: unpack ARCHIVE into DST on this node (skipped where
    current); print one JSON line."""
    src, dst, archive, timeout_s = argv
    try:
        done = extract_here(Path(src), Path(dst), Path(archive), float(timeout_s))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(json.dumps({"host": socket.gethostname(), "error": str(exc)}), flush=True)
        return 1
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
