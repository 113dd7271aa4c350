"""Git plumbing for ``bench publish``/``bench import``: blobs, trees and commits written
without a checkout, so a repository's working tree, index and HEAD are never touched."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runners.errors import InputError

GIT_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
             "GIT_COMMON_DIR", "GIT_PREFIX", "GIT_NAMESPACE")


class GitError(RuntimeError):
    """A git command failed unexpectedly."""


def git(repo: Path, *args: str, stdin: bytes | None = None, index: Path | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C repo args`` (an inherited GIT_DIR & co. are dropped; identity filled in)."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_VARS}
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    if args[0] == "commit-tree":
        for key, value in (("name", "bench publish"), ("email", "bench@localhost")):
            got = subprocess.run(["git", "-C", str(repo), "config", f"user.{key}"], env=env,
                                 capture_output=True, text=True, check=False).stdout.strip()
            for who in ("AUTHOR", "COMMITTER"):
                if not got and not env.get(f"GIT_{who}_{key.upper()}"):
                    env[f"GIT_{who}_{key.upper()}"] = value
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, env=env,
                              capture_output=True, check=False)
    except FileNotFoundError:
        raise InputError("git is not installed (no `git` on PATH); install git") from None
    if check and proc.returncode != 0:
        why = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise GitError(f"git {args[0]} failed in {repo}: {why}")
    return proc


def git_out(repo: Path, *args: str, **kw: Any) -> str:
    """The stripped stdout of :func:`git`."""
    return git(repo, *args, **kw).stdout.decode().strip()


def open_repo(path: str) -> Path:
    """The repository at ``path`` (a work tree or a bare repository); InputError if none."""
    repo = Path(path)
    if not repo.is_dir():
        raise InputError(f"--repo {path} is not a directory; give the path of a git repository")
    proc = git(repo, "rev-parse", "--git-dir", check=False)
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"--repo {path} is not a git repository ({why[-1] if why else '?'}); "
                         f"give a clone or run `git init {path}`")
    return repo


def tip(repo: Path, ref: str) -> str | None:
    """The commit a ref points at, or None when there is no such ref."""
    proc = git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def tree_of(repo: Path, commit: str) -> dict[str, tuple[str, str, str]]:
    """``{path: (mode, type, object)}`` of every file of a commit."""
    out: dict[str, tuple[str, str, str]] = {}
    for item in git(repo, "ls-tree", "-r", "-z", "--full-tree", commit).stdout.split(b"\0"):
        if item:
            meta, path = item.decode(errors="surrogateescape").split("\t", 1)
            mode, kind, obj = meta.split()
            out[path] = (mode, kind, obj)
    return out


def blobs(repo: Path, objects: Sequence[str]) -> list[bytes]:
    """The contents of blobs, read with one ``git cat-file --batch``."""
    out = git(repo, "cat-file", "--batch", stdin="".join(f"{o}\n" for o in objects).encode())
    data, pos, blobs = out.stdout, 0, []
    for _ in objects:
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        blobs.append(data[end + 1:end + 1 + size])
        pos = end + 2 + size
    return blobs


def hash_files(repo: Path, files: Mapping[str, tuple[str, bytes]]) -> dict[str, tuple[str, ...]]:
    """Write the files as blobs (one ``hash-object``): ``{path: (mode, "blob", object)}``."""
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        paths = [Path(tmp) / f"blob{i}" for i in range(len(files))]
        for path, (_mode, data) in zip(paths, files.values(), strict=True):
            path.write_bytes(data)
        shas = git_out(repo, "hash-object", "-w", "--no-filters", "--stdin-paths",
                    stdin="".join(f"{p}\n" for p in paths).encode()).split()
    return {p: (m, "blob", o) for (p, (m, _d)), o in zip(files.items(), shas, strict=True)}


def commit_tree(repo: Path, ref: str, old: str | None, entries: Mapping[str, tuple[str, ...]],
            message: str) -> str | None:
    """Write the tree of entries (temporary index); commit and move ref unless unchanged."""
    info = "".join(f"{m} {k} {o}\t{p}\0" for p, (m, k, o) in sorted(entries.items()))
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        index = Path(tmp) / "index"
        git(repo, "update-index", "-z", "--index-info", index=index,
             stdin=info.encode(errors="surrogateescape"))
        tree = git_out(repo, "write-tree", index=index)
    if old is not None and tree == git_out(repo, "rev-parse", f"{old}^{{tree}}"):
        return None
    parent = ["-p", old] if old else []
    commit = git_out(repo, "commit-tree", tree, *parent, "-F", "-", stdin=message.encode())
    git(repo, "update-ref", "-m", "bench publish", ref, commit, old or "")
    return commit
