"""Helpers shared by the project's own benchmarks: machine description and result files."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def machine_line() -> str:
    """One line describing this machine (for the recorded figures)."""
    load = os.getloadavg()
    return (f"{platform.node()} · {platform.system()} {platform.release()} · "
            f"{os.cpu_count()} cores · Python {platform.python_version()} · "
            f"load {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")


def med(values: list[float]) -> float:
    """Median."""
    return statistics.median(values)


def write_result(name: str, body: str) -> Path:
    """Write ``results/<name>.md`` with a dated header and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"# {name}\n\nRecorded {stamp} on {machine_line()}\n\n{body}\n")
    return path


def require_server(uri: str) -> None:
    """Exit with one line unless ``uri`` is a tracking server that answers ``/health``."""
    if not uri.startswith("http"):
        raise SystemExit(f"--uri must be the tracking server's http(s) URI, not {uri}")
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri}/health", timeout=5).read()
    except OSError as exc:
        raise SystemExit(f"no tracking server at {uri} ({exc}); "
                         "start it with cluster/mlflow/start.sh") from exc
