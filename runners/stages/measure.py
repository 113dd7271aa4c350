"""Run a command and measure it with psutil: wall time, peak RSS and CPU time of its tree.

Output goes straight to files (never held in memory), so a huge or non-UTF-8 output
cannot exhaust the worker.  A timeout kills the whole process tree.  :func:`truncate_log`
caps a log kept as an artifact at :data:`LOG_LIMIT` bytes (its start and its end).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import psutil

LOG_LIMIT = 8 << 20
"""The most bytes of a log :func:`truncate_log` keeps (8 MiB): half from its start, half
from its end."""
COPY_CHUNK = 1 << 20
"""How many bytes :func:`truncate_log` copies at a time."""


@dataclass
class Measured:
    """What one measured command did."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_mb: float
    cpu_user_s: float
    cpu_system_s: float
    timed_out: bool
    stdout_path: str
    stderr_path: str
    host_before: dict[str, float] = field(default_factory=dict)
    host_after: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (for pickling across Parsl and logging)."""
        return asdict(self)


def host_snapshot() -> dict[str, float]:
    """Cores, memory, load average and CPU frequency of this host, right now."""
    mem = psutil.virtual_memory()
    load1, load5, load15 = os.getloadavg()
    freq = psutil.cpu_freq()
    return {
        "cores_logical": float(psutil.cpu_count() or 0),
        "cores_physical": float(psutil.cpu_count(logical=False) or 0),
        "mem_total_gb": mem.total / 2**30,
        "mem_available_gb": mem.available / 2**30,
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "cpu_freq_mhz": float(freq.current) if freq else 0.0,
    }


def kill_tree(pid: int, grace_s: float = 2.0, reap: bool = True) -> None:
    """Terminate a process and all its descendants, then kill what is left.

    ``reap=False`` when the caller waits for ``pid`` itself (a ``Popen`` of its own): waiting
    here would collect its exit status first, and ``Popen.wait()`` would then report 0.
    """
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    if reap:
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
    else:
        _, alive = psutil.wait_procs(procs[:-1], timeout=grace_s)
        if not _ended(root, grace_s):
            alive.append(root)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def _ended(proc: psutil.Process, timeout_s: float) -> bool:
    """Whether ``proc`` exits (a zombie, or already collected) within ``timeout_s``,
    without collecting it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def kill_marked(name: str, value: str) -> int:
    """Kill (with their trees) the processes whose environment has ``name=value``.

    Returns
    -------
    int
        How many were found.
    """
    found = 0
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(name) == value:
                kill_tree(proc.pid)
                found += 1
        except psutil.Error:
            continue
    return found


def _sample_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


def run_measured(argv: list[str], stdout_path: str | Path, stderr_path: str | Path,
                 timeout_s: float, env: dict[str, str] | None = None,
                 cwd: str | None = None, sample_s: float = 0.05,
                 snapshot: bool = True, max_interval_s: float = 1.0) -> Measured:
    """Run ``argv`` (no shell), writing its output to files, and measure it.

    Parameters
    ----------
    argv : list of str
        The command; never passed through a shell.
    stdout_path, stderr_path : path
        Where its output goes.
    timeout_s : float
        After this many seconds the whole process tree is killed.
    env : dict, optional
        The environment (default: this process's).
    cwd : str, optional
        The working directory.
    sample_s, max_interval_s : float
        The first interval between samples of the tree's RSS, doubling up to the maximum.
    snapshot : bool
        Take host snapshots before and after.

    Returns
    -------
    Measured
    """
    before = host_snapshot() if snapshot else {}
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    stop = threading.Event()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=env, cwd=cwd)
        proc = psutil.Process(popen.pid)

        def sampler() -> None:
            # Back off (50 ms doubling to 1 s): a short run still gets early samples, and a
            # long one is not disturbed 20 times a second (2 MPI ranks busy-poll 2 cores).
            nonlocal peak
            interval = sample_s
            while not stop.wait(interval):
                peak = max(peak, _sample_rss(proc))
                interval = min(interval * 2, max_interval_s)

        def expire() -> None:
            expired.set()
            kill_tree(popen.pid, reap=False)

        # Popen.wait(timeout) polls with sleeps of up to 50 ms, which would inflate short
        # trials; block in waitpid instead and let a timer enforce the timeout.
        expired = threading.Event()
        timer = threading.Timer(timeout_s, expire)
        thread = threading.Thread(target=sampler, daemon=True)
        timer.start()
        thread.start()
        try:
            returncode = popen.wait()
        except BaseException:
            kill_tree(popen.pid, reap=False)
            popen.wait()
            raise
        finally:
            wall = time.perf_counter() - t0
            timer.cancel()
            stop.set()
            thread.join()
        timed_out = expired.is_set()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measured(
        argv=list(argv), returncode=returncode, wall_s=wall, peak_rss_mb=peak / 2**20,
        cpu_user_s=usage1.ru_utime - usage0.ru_utime,
        cpu_system_s=usage1.ru_stime - usage0.ru_stime, timed_out=timed_out,
        stdout_path=str(stdout_path), stderr_path=str(stderr_path),
        host_before=before, host_after=host_snapshot() if snapshot else {})


def read_text(path: str | Path, limit: int = 1 << 20) -> str:
    """Read at most ``limit`` bytes of a log as text (undecodable bytes replaced)."""
    with open(path, "rb") as fh:
        data = fh.read(limit)
    return data.decode("utf-8", errors="replace")


def tail(path: str | Path, lines: int = 1, limit: int = 1 << 16) -> str:
    """The last non-empty lines of a log, joined by ' | '."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - limit))
        text = fh.read().decode("utf-8", errors="replace")
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def cause(path: str | Path) -> str:
    """Why a command failed, from its log: the first error line among the last 20 lines
    (e.g. ``slurmstepd-node2: error: execve(): ...``) and the last line, when they differ
    (an MPI launcher's last line often only says that it ended the rest)."""
    kept = tail(path, 20).split(" | ") if os.path.getsize(path) else []
    first = next((ln for pattern in ERROR_LINES for ln in kept if pattern.search(ln)), "")
    return " | ".join(dict.fromkeys(x for x in (first, kept[-1] if kept else "") if x))


#: Lines that say what went wrong, the most telling first.
ERROR_LINES = (re.compile(r"No such file|not found|Permission denied|execve", re.I),
               re.compile(r"\berror\b", re.I))


def truncate_log(path: str | Path, limit: int | None = None) -> int:
    """Cap a log at about ``limit`` bytes: keep its start and its end, mark the cut.

    A larger log is replaced (atomically) by its first ``limit // 2`` bytes, a marker line
    ``[... N bytes truncated by bench: the log was X MiB ...]`` and its last bytes, up to
    ``limit`` in all.  Bytes are copied as they are (never decoded), in chunks, so memory
    stays bounded whatever the log's size.  A log that would not get smaller is kept.

    Parameters
    ----------
    path : path
        The log file.
    limit : int, optional
        The most bytes kept from the log, marker aside (default :data:`LOG_LIMIT`).

    Returns
    -------
    int
        How many bytes were cut (0 when the log was kept whole).
    """
    limit = LOG_LIMIT if limit is None else limit
    size = os.path.getsize(path)
    head = limit // 2
    tail_len = limit - head
    cut = size - limit
    marker = (f"\n[... {cut} bytes truncated by bench: the log was {size / 2**20:.1f} MiB "
              "...]\n").encode()
    if cut <= len(marker):
        return 0
    tmp = Path(f"{path}.truncating")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            _copy(src, dst, head)
            dst.write(marker)
            src.seek(size - tail_len)
            _copy(src, dst, tail_len)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return cut


def _copy(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    """Copy ``n`` bytes from ``src``'s position to ``dst`` in chunks of :data:`COPY_CHUNK`."""
    while n > 0:
        data = src.read(min(n, COPY_CHUNK))
        if not data:
            break
        dst.write(data)
        n -= len(data)
