"""What ``bench nightly`` and ``bench bisect`` share: a suite file, a private clone of the
benchmarked repository, and running every suite entry against one of its commits.

A suite is a YAML file ``experiments: [[run.py args ...], ...]``; each entry is one
``python run.py …`` call (``-m`` for a sweep) with ``BENCH_TARGET`` set to the checkout,
``${BENCH_TARGET}`` in an argument replaced by it, and the given tags added to its runs.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EntryResult:
    """One suite entry as it ran: its arguments, exit code and (when captured) output."""

    command: str
    code: int
    output: str = ""


def load_suite(path: Path) -> list[list[str]]:
    """The suite's entries: lists of run.py arguments (``experiments:`` in a YAML file).

    Raises
    ------
    ValueError
        When the file is missing or not a list of argument lists.
    """
    import yaml

    if not path.is_file():
        raise ValueError(f"no suite file {path}; see conf/nightly/example.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("experiments") if isinstance(data, dict) else None
    if not entries or not all(isinstance(e, list) and e for e in entries):
        raise ValueError(f"{path} needs 'experiments:' as a list of argument lists, "
                         "e.g. - [bench=osu, bench.ranks=2]")
    return [[str(a) for a in e] for e in entries]


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git; return its stdout (raises CalledProcessError with git's message)."""
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                         timeout=600)
    return out.stdout.strip()


def git_failure(exc: subprocess.CalledProcessError, repo: str) -> str:
    """One line saying which git command failed for ``repo`` and what git said."""
    return (f"git {' '.join(exc.cmd[1:3])} failed for {repo}: "
            f"{' '.join((exc.stderr or '').split())[:300]}")


def private_clone(repo: str, cache: Path, purpose: str) -> Path:
    """Clone ``repo`` into ``<cache>/<purpose>/<name>``, or fetch it when already there.

    Each purpose (``nightly``, ``bisect``) has its own clone, so one never moves the
    other's checkout.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(repo.rstrip("/")).name.removesuffix(".git"))
    dest = cache / purpose / name
    if (dest / ".git").is_dir():
        git("fetch", "--quiet", "--tags", "origin", cwd=dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", repo, str(dest))
    return dest


def resolve_commit(clone: Path, ref: str) -> str:
    """The commit ``ref`` names in ``clone`` (a remote branch first, then anything git
    reads: a tag, a sha, ``HEAD~3``); '' when it names none."""
    for candidate in (f"origin/{ref}", ref):
        try:
            return git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", cwd=clone)
        except subprocess.CalledProcessError:
            continue
    return ""


def tags_override(tags: Mapping[str, str]) -> str:
    """One Hydra override adding ``tags`` to a run (dotted keys such as ``bisect.id`` kept
    whole, every value quoted so a sha such as ``1e10`` stays a string)."""
    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return "+tags={" + ", ".join(f"{k}: {quoted(str(v))}" for k, v in tags.items()) + "}"


def run_suite(entries: list[list[str]], target: Path, tags: Mapping[str, str],
              extra: list[str], project: Path, label: str = "nightly",
              capture: bool = False) -> list[EntryResult]:
    """Run every suite entry against the checkout ``target``.

    Parameters
    ----------
    entries : list of list of str
        The suite's run.py arguments.
    target : Path
        The checkout (``BENCH_TARGET``).
    tags : mapping
        Tags of every run made (e.g. ``target_commit``).
    extra : list of str
        Overrides added to every entry (e.g. the tracking store).
    project : Path
        The directory holding ``run.py``.
    label : str
        The prefix of the line printed before each entry.
    capture : bool
        Keep each entry's output (returned) instead of letting it through.

    Returns
    -------
    list of EntryResult
        One per entry, in order.
    """
    env = dict(os.environ, BENCH_TARGET=str(target))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = []
    for entry in entries:
        args = [a.replace("${BENCH_TARGET}", str(target)) for a in entry]
        argv = [sys.executable, str(project / "run.py"), *args, tags_override(tags), *extra]
        print(f"{label}: {shlex.join(args)}", flush=True)
        proc = subprocess.run(argv, env=env, cwd=project, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.STDOUT if capture else None)
        done.append(EntryResult(shlex.join(args), proc.returncode, proc.stdout or ""))
    return done
