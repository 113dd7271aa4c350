"""Where Parsl finds its own programs: the running interpreter's ``bin/``."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def python_bin_dir() -> str:
    """The directory of the running interpreter (Parsl finds its worker scripts on PATH)."""
    return str(Path(sys.executable).parent)


def ensure_python_on_path() -> None:
    """Put this interpreter's ``bin/`` first on PATH, so HTEX finds ``interchange.py``."""
    bindir = python_bin_dir()
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])
