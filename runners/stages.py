"""The stages of an experiment as typed functions.

Each runs on a Parsl worker (wrapped as a ``python_app`` by :mod:`runners.experiment`),
returns a :class:`StageResult` and raises :class:`StageError` with a failure kind.
Nothing here touches MLflow.
"""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.measure import Measured, kill_marked, read_text, run_measured, tail

MARKER = ".bench-env.json"
FREEZE = "bench-freeze.txt"
STRACE_CALLS = "open,openat,stat,lstat,fstat,newfstatat,statx"
#: Marks a trial's processes (by its log path), so a retried trial can stop what a lost
#: worker's attempt left running.
TRIAL_MARKER = "BENCH_TRIAL"


class StageError(RuntimeError):
    """A stage that failed, with its cause.

    Parameters
    ----------
    stage : str
        The stage name (env, stage, warmup, bench, ...).
    kind : str
        ``sanity``, ``timeout``, ``error``, ``parse``, ``scheduler`` or ``worker_lost``.
    message : str
        One line saying what went wrong.
    logs : list of str
        Log files to attach to the run.
    """

    def __init__(self, stage: str, kind: str, message: str, logs: list[str] | None = None):
        super().__init__(f"{stage} failed ({kind}): {message}")
        self.stage, self.kind, self.message, self.logs = stage, kind, message, logs or []

    def __reduce__(self) -> tuple[Any, ...]:
        return (StageError, (self.stage, self.kind, self.message, self.logs))


@dataclass
class StageResult:
    """What a stage produced: its time, metrics, tags, log files and data for the next stage."""

    stage: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def where() -> dict[str, str]:
    """Tags naming where a stage ran: the worker's host and its batch job id, if any."""
    import socket

    tags = {"worker.host": socket.gethostname()}
    for var in ("SLURM_JOB_ID", "PBS_JOBID", "COBALT_JOBID"):
        if os.environ.get(var):
            tags["scheduler.job_id"] = os.environ[var]
            break
    return tags


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


def log_paths(log_dir: str, name: str) -> tuple[Path, Path]:
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return Path(log_dir) / f"{name}.stdout.log", Path(log_dir) / f"{name}.stderr.log"


def check_exit(m: Measured, stage: str, what: str) -> None:
    if m.timed_out:
        raise StageError(stage, "timeout", f"{what} exceeded its timeout after {m.wall_s:.0f} s",
                         [m.stdout_path, m.stderr_path])
    if m.returncode != 0:
        raise StageError(stage, "error", f"{what} exited {m.returncode}: "
                         f"{tail(m.stderr_path) or tail(m.stdout_path)}",
                         [m.stdout_path, m.stderr_path])


def build_env(spec_path: str, env_root: str, log_dir: str,
              timeout_s: float = 1800.0) -> StageResult:
    """Build (or reuse) a relocatable virtual environment from a spec in ``envs/``.

    The environment lives at ``<env_root>/<name>-<hash>``; it is rebuilt only when the
    spec's content hash changes.  Interpreter files are copied, not symlinked.
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
            freeze = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "freeze"],
                                    capture_output=True, text=True, check=True)
            (env_dir / FREEZE).write_text(freeze.stdout)
            (env_dir / MARKER).write_text(json.dumps({"hash": digest, "spec": spec}))
    logs = [str(p) for p in Path(log_dir).glob("env*.log")]
    return StageResult("env", time.perf_counter() - t0, {"env.cached": float(cached)},
                       {"env.hash": digest}, logs + [str(env_dir / FREEZE)],
                       {"env_dir": str(env_dir), "hash": digest})


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


def import_code(packages: list[str]) -> str:
    """Python source that imports mpi4py (without initialising MPI) and the package suite."""
    lines = ["import json, mpi4py", "mpi4py.rc.initialize = False", "from mpi4py import MPI",
             "import importlib", "files = {}"]
    lines += [f"files[{p!r}] = getattr(importlib.import_module({p!r}), '__file__', None)"
              for p in packages]
    lines.append("print(json.dumps(files))")
    return "\n".join(lines)


def parse_strace_summary(text: str) -> dict[str, float]:
    """Parse ``strace -c`` output into ``{syscall: calls}`` plus ``total`` and ``errors``.

    Parameters
    ----------
    text : str
        The summary table ``strace -c -o FILE`` writes.

    Returns
    -------
    dict
    """
    counts: dict[str, float] = {}
    errors = 0.0
    for line in text.splitlines():
        tok = line.split()
        if len(tok) < 5 or not tok[0][0].isdigit() or tok[-1] == "total":
            continue
        counts[tok[-1]] = float(tok[3])
        errors += float(tok[4]) if len(tok) == 6 else 0.0
    counts["total"] = sum(counts.values())
    counts["errors"] = errors
    return counts


def warmup(staged: StageResult, packages: list[str], log_dir: str, use_strace: bool = True,
           timeout_s: float = 600.0) -> StageResult:
    """Import the package suite once from one process (writes bytecode), then count syscalls.

    An import that fails is a ``sanity`` failure.  Where ``strace`` is missing or not
    permitted, the counts are skipped and a tag says why.
    """
    t0 = time.perf_counter()
    python = str(Path(staged.data["env_dir"]) / "bin" / "python")
    out, err = log_paths(log_dir, "warmup")
    m = run_measured([python, "-c", import_code(packages)], out, err, timeout_s, snapshot=False)
    if m.timed_out or m.returncode != 0:
        kind = "timeout" if m.timed_out else "sanity"
        raise StageError("warmup", kind, f"importing {', '.join(packages)} with {python} failed: "
                         f"{tail(err)}", [str(out), str(err)])
    metrics = {"warmup.import_s": m.wall_s}
    tags = {"warmup.module_files": read_text(out, 4096).strip(), **where()}
    logs = [str(out), str(err)]
    strace = shutil.which("strace")
    if not use_strace:
        tags["warmup.strace"] = "disabled"
    elif strace is None:
        tags["warmup.strace"] = "unavailable: strace is not installed"
    else:
        sout, serr = log_paths(log_dir, "strace")
        summary = Path(log_dir) / "strace.summary.txt"
        ms = run_measured([strace, "-f", "-c", "-o", str(summary), "-e", f"trace={STRACE_CALLS}",
                           python, "-c", import_code(packages)], sout, serr, timeout_s,
                          snapshot=False)
        if ms.returncode != 0 or not summary.is_file():
            tags["warmup.strace"] = f"unavailable: {tail(serr) or 'strace failed'}"
        else:
            counts = parse_strace_summary(summary.read_text())
            metrics.update({f"warmup.syscalls.{k}": v for k, v in counts.items()})
            tags["warmup.strace"] = "ok"
            logs.append(str(summary))
    return StageResult("warmup", time.perf_counter() - t0, metrics, tags, logs,
                       dict(staged.data))


def run_trial(after: Any, argvs: list[list[str]], label: str, log_dir: str,
              timeout_s: float = 600.0, parser: str = "json") -> StageResult:
    """Run one benchmark trial: launch each command in turn, measure, parse JSON result lines.

    Parameters
    ----------
    after : StageResult
        The previous trial's result (or the warmup's): orders the trials and names the
        environment.
    argvs : list of list of str
        The commands of one trial (e.g. one per OSU test); never run through a shell.
        ``{env}`` in an argument is replaced by the environment's directory.
    label : str
        Names the trial's logs, e.g. ``trial-0`` or ``warmup-0``.
    log_dir : str
        Where the logs go.
    timeout_s : float
        Kill a command's process tree after this long.
    parser : str
        ``json`` (the output contract) or ``parsl_perf`` (parsl-perf's text).

    Returns
    -------
    StageResult
        ``data["results"]``: the parsed result lines as dicts; ``data["measured"]``: the
        psutil measurement (wall and CPU summed, peak RSS the maximum over the commands).
        When a log was longer than :data:`runners.measure.LOG_LIMIT`, it is cut to its
        start and end after parsing (see :func:`runners.measure.truncate_log`): the metric
        ``bench.log_truncated_bytes`` gives the bytes cut and ``data["log_truncated"]``
        each cut log's original size and bytes cut.

    Notes
    -----
    The stdout is parsed as a stream (:func:`runners.results.parse_file`), so a result
    line anywhere in an output of any size or encoding is found with bounded memory.
    """
    from dataclasses import asdict

    from runners.results import ResultParseError, parse_file, parse_parsl_perf_file

    parse = parse_parsl_perf_file if parser == "parsl_perf" else parse_file

    env_dir = str(after.data.get("env_dir", ""))
    results: list[dict[str, Any]] = []
    logs: list[str] = []
    total: dict[str, Any] = {}
    truncated: dict[str, dict[str, int]] = {}
    for i, raw in enumerate(argvs):
        argv = [a.replace("{env}", env_dir) for a in raw]
        name = label if len(argvs) == 1 else f"{label}.{i}"
        out, err = log_paths(log_dir, name)
        logs += [str(out), str(err)]
        if out.exists():    # an earlier attempt (its worker was lost): stop what it left
            kill_marked(TRIAL_MARKER, str(out))
        m = run_measured(argv, out, err, timeout_s, env={**os.environ, TRIAL_MARKER: str(out)})
        try:
            check_exit(m, "bench", f"{name} ({Path(argv[0]).name})")
            try:
                results += [asdict(r) for r in parse(out)]
            except ResultParseError as exc:
                raise StageError("bench", "parse", f"{name}: {exc}", logs) from None
        finally:    # after parsing (no result is lost), also when the command failed
            truncated.update(cap_logs([out, err]))
        one = m.as_dict()
        if not total:
            total = one
        else:
            for key in ("wall_s", "cpu_user_s", "cpu_system_s"):
                total[key] += one[key]
            total["peak_rss_mb"] = max(total["peak_rss_mb"], one["peak_rss_mb"])
            total["host_after"] = one["host_after"]
    metrics = {k: float(total[k]) for k in ("wall_s", "peak_rss_mb", "cpu_user_s",
                                            "cpu_system_s")}
    data: dict[str, Any] = {"results": results, "measured": total, "env_dir": env_dir}
    if truncated:
        metrics["bench.log_truncated_bytes"] = float(sum(t["cut"] for t in truncated.values()))
        data["log_truncated"] = truncated
    return StageResult("bench", total["wall_s"], metrics, where(), logs, data)


def cap_logs(paths: list[Path]) -> dict[str, dict[str, int]]:
    """Cap each log at :data:`runners.measure.LOG_LIMIT` bytes (start and end kept).

    Parameters
    ----------
    paths : list of Path
        The logs of one command.

    Returns
    -------
    dict
        ``{path: {"size": original bytes, "cut": bytes cut}}`` for each log that was cut.
        A log that cannot be cut (e.g. the disk is full) is kept whole.
    """
    from runners.measure import truncate_log

    out: dict[str, dict[str, int]] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            size = path.stat().st_size
            cut = truncate_log(path)
        except OSError:
            continue
        if cut:
            out[str(path)] = {"size": size, "cut": cut}
    return out
