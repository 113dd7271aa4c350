"""Copy a built environment into a filesystem's root on *this* node (rsync; skipped when
the copy is current).

:func:`runners.stages.env.stage_env` calls :func:`copy_here` in its own process for a
shared filesystem; for a node-local one it starts this module as one task per node of
the allocation through the machine's launcher (``srun -N 4 --ntasks-per-node=1 python -m
runners.stages.node_copy SRC DST LOGS TIMEOUT``), and each task prints one JSON line:
its host, what it did and how long it took.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from runners.stages.base import MARKER, StageError, check_exit, log_paths
from runners.stages.measure import run_measured


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
    if shutil.which("rsync") is None:
        raise StageError("stage", "error", f"rsync is not installed on node {host} "
                         "(Debian: apt-get install rsync)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    # One copy at a time into the same place (the jobs of a sweep stage concurrently).
    with open(f"{dst}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dst / MARKER).is_file() and (dst / MARKER).read_text() == (src / MARKER).read_text():
            return {"host": host, "mode": "current", "seconds": time.perf_counter() - t0,
                    "logs": []}
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


def main(argv: list[str]) -> int:
    """``SRC DST LOG_DIR TIMEOUT_S``: copy on this node, print one JSON line."""
    src, dst, log_dir, timeout_s = argv
    host = socket.gethostname()
    try:
        done = copy_here(Path(src), Path(dst), log_dir, float(timeout_s), f"stage.{host}")
    except StageError as exc:
        print(json.dumps({"host": host, "error": str(exc)}), flush=True)
        return 1
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
