"""Where a site's agent keeps its files on a host: ``<site.dir>/<name>/`` holds its pid and
lock file, its log, its status (rewritten as it polls), its Unix socket, and the output
directories of the runs it took from the store."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from omegaconf import DictConfig

#: Status files older than this say nothing about a live agent.
STALE_S = 60.0


@dataclass(frozen=True)
class SiteFiles:
    """The files of one site's agent on this host."""

    root: Path

    @classmethod
    def of(cls, cfg: DictConfig) -> SiteFiles:
        """The files of ``cfg.site`` (``site.dir`` defaults to ``<project>/.sites``)."""
        base = str(cfg.site.dir or "") or f"{cfg.project_root}/.sites"
        return cls(Path(base) / str(cfg.site.name))

    @property
    def lock(self) -> Path:
        """Held (flock) by the live agent; holds its pid."""
        return self.root / "agent.pid"

    @property
    def log(self) -> Path:
        """The agent's log (its stdout and stderr too)."""
        return self.root / "agent.log"

    @property
    def status(self) -> Path:
        """What the agent runs, its blocks and queue, when it last polled (JSON)."""
        return self.root / "status.json"

    @property
    def socket(self) -> Path:
        """Where runs submitted on this host reach the agent at once."""
        return self.root / "agent.sock"

    @property
    def config(self) -> Path:
        """The agent's composed config."""
        return self.root / "agent.yaml"

    def run_dir(self, run_id: str) -> Path:
        """The output directory of a run the agent took from the store."""
        return self.root / "runs" / run_id

    def pid(self) -> int | None:
        """The pid of this site's live agent on this host, else None."""
        try:
            pid = int(self.lock.read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "runners.site" not in " ".join(
                    proc.cmdline()):
                return None
            return pid
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def read_status(self) -> dict[str, Any] | None:
        """The agent's last status, or None."""
        try:
            return dict(json.loads(self.status.read_text()))
        except (OSError, ValueError):
            return None

    def write_status(self, status: dict[str, Any]) -> None:
        """Replace the status file (atomically: readers never see half of it)."""
        tmp = self.status.with_suffix(".tmp")
        tmp.write_text(json.dumps({**status, "written": time.time()}, indent=1) + "\n")
        tmp.replace(self.status)
