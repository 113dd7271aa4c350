"""The site agent: one process per site and host that keeps a Parsl DataFlowKernel (and so
its blocks: local worker pools, or batch jobs) alive and runs the runs queued for its site.

    python -m runners.site.agent <site dir>/agent.yaml     (started by `bench site start`)

It polls the store for SCHEDULED runs tagged ``site=<name>``, claims each
(:func:`runners.tracking.queue.claim`: one agent wins, whatever the host), and runs it
through the same :func:`runners.run.lifecycle.close_run` as ``python run.py``, so it ends
FINISHED, FAILED or KILLED with the same tags and artifacts.  Runs submitted on this host
arrive through its socket (:mod:`runners.site.inbox`) without waiting for a poll.  Parsl's
own strategy scales the blocks: one is started at once, released after ``site.idle_min``
without work, started again for the next run (also when one reached its walltime).
While the tracking server cannot be reached, claiming pauses; running runs go on into the
spool, which the agent uploads once the server answers again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runners.config.validate import preflight, validate
from runners.errors import ConfigError, RunFailed, one_line
from runners.run.dfk import start as dfk_start
from runners.run.dfk import stop as dfk_stop
from runners.run.lifecycle import close_run, open_run, open_tracker, sigterm_to_interrupt
from runners.run.reap import mark_children, parsl_pids, reap_runs
from runners.run.summary import summary_text
from runners.site.blocks import cancel_blocks, live_blocks
from runners.site.files import SiteFiles
from runners.site.inbox import Inbox
from runners.site.submit import queue_tags
from runners.site.sweeps import close_parent
from runners.tracking.driver import driver_tags
from runners.tracking.queue import (
    AGENTS,
    brief,
    claim,
    claim_key,
    download_config,
    queued_runs,
    set_status,
    site_runs,
)
from runners.tracking.server import probe
from runners.tracking.tracker import Tracker

log = logging.getLogger("runners.site")
#: The longest pause between two looks at the queue when nothing happens.
IDLE_POLL_S = 1.0


class Agent:
    """One site's agent on this host.

    Parameters
    ----------
    cfg : DictConfig
        The composed config of ``bench site start NAME [overrides]`` (its ``site``,
        ``machine``, ``fs`` and ``tracking`` sections are used).
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.name = cfg, str(cfg.site.name)
        self.files = SiteFiles.of(cfg)
        self.label = str(cfg.machine.name)
        self.workers = int(cfg.site.workers) or int(cfg.machine.max_workers)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{driver_tags()['driver.started']}"
        self.lock = threading.Lock()
        self.held: dict[str, Future[dict[str, Any]]] = {}   # run id → its outcome
        self.wake = threading.Event()
        self.stopping = False
        self.dfk: Any = None
        self.record_id = ""
        self.polled = self.beat = self.written = 0.0     # when it last polled, beat, wrote
        self.done = self.failed = 0
        self.paused = ""
        self.left_blocks: list[str] = []
        self.recorded_blocks: list[str] = []

    # -- start and stop ------------------------------------------------------------------

    def hold_lock(self) -> Any:
        """Take this site's lock on this host, or refuse: one agent per site and host."""
        self.files.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.files.lock, "a+")    # noqa: SIM115 - held while the agent lives
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"an agent for site={self.name} already runs on this host "
                              f"(pid {self.files.pid() or '?'}); stop it first with "
                              f"`bench site stop {self.name}`") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def run(self) -> int:
        """Serve the site until SIGTERM (``bench site stop``); return the exit code."""
        handle = self.hold_lock()
        preflight(self.cfg)
        os.environ.update({str(k): str(v) for k, v in self.cfg.machine.env.items()})
        sigterm_to_interrupt()
        mark_children()
        self.tracker, _ = open_tracker(self.cfg)
        self.reap()
        import parsl_configs

        config = parsl_configs.build(self.cfg.machine, str(self.files.root / "runinfo"),
                                     str(self.cfg.fs.name),
                                     max_idletime=float(self.cfg.site.idle_min) * 60.0)
        self.dfk = dfk_start(config)
        self.cancel_left_blocks()
        self.record_id = self.tracker.start_run(
            AGENTS, f"{self.name}@{socket.gethostname()}", {},
            {"site": self.name, "site.machine": self.label, "site.agent": self.id,
             "site.blocks": ",".join(self.blocks()),
             "site.log": str(self.files.log), "driver.parsl_pids": parsl_pids(self.dfk),
             **driver_tags()})
        inbox = Inbox(self.files.socket, self.submitted)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="run")
        self.pool = pool
        log.info("site %s: agent %s serving machine=%s with %d worker(s)", self.name, self.id,
                 self.label, self.workers)
        print(f"site {self.name}: agent ready (pid {os.getpid()})", flush=True)
        try:
            self.loop()
        except KeyboardInterrupt:
            log.info("site %s: stopping", self.name)
        finally:
            self.stopping = True
            inbox.close()
            pool.shutdown(wait=True)     # the runs it holds end first
            dfk_stop(self.dfk)
            self.tracker.end_run(self.record_id, "FINISHED")
            self.write_status()
            handle.close()
        return 0

    def reap(self) -> None:
        """End KILLED (or requeue) this site's runs whose agent on this host is gone, and
        stop the Parsl processes dead agents of this site left."""
        client = self.tracker.online
        runs = site_runs(client, self.name) + site_runs(client, self.name, experiment=AGENTS)
        lost = [(r.info.run_id, dict(r.data.tags)) for r in runs]
        ended = reap_runs(self.tracker, lost, f"the agent of site={self.name}")
        for r in runs:
            if r.info.run_id in ended:
                log.info("site %s: run %s of a lost agent ended or requeued", self.name,
                         r.info.run_id)
                close_parent(self.tracker, r.info.run_id, self.name, dict(r.data.tags),
                             str(r.info.experiment_id))
        self.left_blocks = [job for run_id, tags in lost if run_id in ended
                            for job in tags.get("site.blocks", "").split(",") if job]

    def cancel_left_blocks(self) -> None:
        """Cancel the batch jobs a lost agent of this site left (:func:`cancel_blocks`)."""
        executor = self.dfk.executors.get(self.label)
        jobs = [j for j in self.left_blocks if j not in live_blocks(executor)]
        if str(self.cfg.machine.scheduler) != "local":   # local pools went with the processes
            cancel_blocks(executor, jobs, self.name)

    # -- the queue -----------------------------------------------------------------------

    def loop(self) -> None:
        """Claim queued runs while there is room; record a heartbeat; until stopped."""
        pause = float(self.cfg.site.poll_s)
        while True:
            busy = self.running()
            # runs handed over beyond the workers wait in the pool: a worker that ends a run
            # begins the next at once, not at the next poll
            if busy < 2 * self.workers and self.claiming():
                taken = self.take(2 * self.workers - busy)
                pause = float(self.cfg.site.poll_s) if taken else min(pause * 2, IDLE_POLL_S)
            blocks = self.blocks()
            if (time.time() - self.beat >= float(self.cfg.site.heartbeat_s)
                    or blocks != self.recorded_blocks):     # the store knows what to cancel
                self.recorded_blocks = blocks
                self.heartbeat()
            self.write_status()
            self.wake.wait(pause)
            self.wake.clear()

    def running(self) -> int:
        """Runs held now (running, or handed over and waiting for a worker); the ended
        ones are forgotten."""
        with self.lock:
            self.held = {r: f for r, f in self.held.items() if not f.done()}
            return len(self.held)

    def claiming(self) -> bool:
        """Whether the store can be asked (claiming pauses while the server is gone)."""
        if self.tracker.offline_reason is None:
            return True
        reason = probe(self.tracker.uri)
        if reason is not None:
            self.paused = reason
            return False
        if self.running():
            return False        # running runs still write to the spool: wait for them
        log.info("site %s: the tracking server answers again; uploading the spool", self.name)
        self.tracker = self.reopen()
        self.paused = ""
        return True

    def reopen(self) -> Tracker:
        """A fresh tracker after an outage, once the spool was uploaded (``bench sync``)."""
        spool = self.tracker.spool
        if spool is not None:
            from runners.tracking.replay import Replayer
            from runners.tracking.sync import sync

            try:
                sync(spool.root, Replayer, self.tracker.uri)
            except Exception as exc:        # noqa: BLE001 - `bench sync` can do it later
                log.warning("site %s: uploading the spool failed: %s", self.name, one_line(exc))
        tracker, _ = open_tracker(self.cfg)
        return tracker

    def take(self, room: int) -> int:
        """Claim up to ``room`` queued runs; return how many were taken."""
        self.polled = time.time()
        try:
            ids = queued_runs(self.tracker.online, self.name, room + len(self.held))
        except Exception as exc:      # noqa: BLE001 - the store did not answer: next poll
            self.paused = one_line(exc)
            return 0
        taken = 0
        for run_id in ids:
            if taken >= room:
                break
            if run_id not in self.held and self.start(run_id) is not None:
                taken += 1
        return taken

    def start(self, run_id: str) -> Future[dict[str, Any]] | None:
        """Hand a queued run to a worker thread, once (the claim happens there); return its
        future (the one it already has when it was handed over before)."""
        with self.lock:
            if run_id not in self.held and not self.stopping:
                self.held[run_id] = self.pool.submit(self.execute, run_id)
            return self.held.get(run_id)

    def submitted(self, request: dict[str, Any]) -> tuple[str, Any]:
        """A run submitted through the socket: record it queued (its config files from the
        submitter's output directory), start it now in a directory of its own."""
        given = Path(str(request["out_dir"]))
        cfg = OmegaConf.load(given / ".hydra" / "resolved.yaml")
        assert isinstance(cfg, DictConfig)
        kind = validate(cfg)
        extra = {**queue_tags(cfg), **{f"submit.{k}": str(v) for k, v in
                                       dict(request.get("submitter", {})).items()}}
        run_id = open_run(cfg, kind, self.tracker, given, extra_tags=extra, queued=True)
        shutil.copytree(given / ".hydra", self.files.run_dir(run_id) / ".hydra",
                        dirs_exist_ok=True)
        fut = self.start(run_id)
        self.wake.set()
        if fut is None or not request.get("wait"):
            return run_id, None
        return run_id, fut.result

    # -- one run -------------------------------------------------------------------------

    def execute(self, run_id: str) -> dict[str, Any]:
        """Claim a queued run and run it; return its outcome (for a waiting submitter)."""
        tracker = self.tracker
        if self.stopping:       # handed over but not begun: left for the next agent
            return {"status": "SCHEDULED", "code": 1, "text": f"error: the agent of site="
                    f"{self.name} stopped before it took run {run_id}; it stays queued"}
        try:
            run = brief(tracker.online, run_id)
            tags = run.tags
            if run.status != "SCHEDULED" or not claim(tracker.online, run_id,
                                                      claim_key(tags), self.id):
                return {"status": "taken", "code": 0, "text": f"run {run_id}: another agent "
                        "took it"}
            out_dir = self.files.run_dir(run_id)
            given = tags.get("hydra.output_dir", "")
            tracker.set_tags(run_id, {**driver_tags(), "site.agent": self.id,
                                      "site.claimed_at": f"{time.time():.3f}",
                                      "hydra.output_dir": str(out_dir),
                                      "driver.parsl_pids": parsl_pids(self.dfk)})
            set_status(tracker.online, run_id, "RUNNING")
        except Exception as exc:        # noqa: BLE001 - not claimed: left in the queue
            log.warning("site %s: could not claim run %s: %s", self.name, run_id, one_line(exc))
            return {"status": "SCHEDULED", "code": 1, "text": f"run {run_id} could not be "
                    f"claimed: {one_line(exc)}"}
        try:
            return self.run_claimed(tracker, run_id, out_dir, given, run.experiment_id)
        finally:
            close_parent(tracker, run_id, self.name, tags, run.experiment_id)
            self.wake.set()         # room for the next run; the status file says so

    def run_claimed(self, tracker: Tracker, run_id: str, out_dir: Path, given: str,
                    experiment_id: str) -> dict[str, Any]:
        """Run a claimed run's stages on the agent's executor and close it."""
        try:
            cfg = self.config_of(tracker, run_id, out_dir, given)
            kind = validate(cfg)
        except Exception as exc:        # noqa: BLE001 - the run fails, the agent goes on
            tracker.fail_run(run_id, "config", "config", one_line(exc, 1000))
            self.failed += 1
            return {"status": "FAILED", "code": 2, "text": f"error: {one_line(exc)}"}
        try:
            summary = close_run(cfg, kind, self.dfk, tracker, run_id, out_dir, None,
                                label=self.label, quiet=True)
        except RunFailed as exc:
            self.failed += 1
            status = "KILLED" if exc.code == 130 else "FAILED"
            return {"status": status, "code": exc.code,
                    "text": f"error: {exc.reason} [run {run_id} {status}]"}
        except Exception as exc:        # noqa: BLE001 - close_run ended it FAILED
            self.failed += 1
            return {"status": "FAILED", "code": 1, "text": f"error: {one_line(exc)}"}
        self.done += 1
        return {"status": "FINISHED", "code": 0,
                "text": summary_text(cfg, summary, tracker, run_id, experiment_id)}

    def config_of(self, tracker: Tracker, run_id: str, out_dir: Path,
                  given: str) -> DictConfig:
        """The run's composed config: from its output directory on this host (a socket
        submission was copied there; ``given``: where a sweep on this host queued it), else
        from its ``config/resolved.yaml`` artifact."""
        path = out_dir / ".hydra" / "resolved.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() and (Path(given) / ".hydra" / "resolved.yaml").is_file():
            shutil.copy(Path(given) / ".hydra" / "resolved.yaml", path)
        if not path.is_file():
            try:
                download_config(tracker.online, run_id, path)
            except Exception as exc:        # noqa: BLE001 - MLflow's errors vary by store
                raise ConfigError(f"run {run_id} has no config/resolved.yaml artifact: "
                                  f"{one_line(exc)}") from None
        cfg = OmegaConf.load(path)
        assert isinstance(cfg, DictConfig)
        return cfg

    # -- what others see -----------------------------------------------------------------

    def blocks(self) -> list[str]:
        """The job ids of the executor's live blocks."""
        return live_blocks(self.dfk.executors.get(self.label) if self.dfk is not None else None)

    def status(self) -> dict[str, Any]:
        """What ``bench site status`` prints."""
        with self.lock:
            running = [r for r, f in self.held.items() if not f.done()]
        return {"site": self.name, "machine": self.label, "pid": os.getpid(), "agent": self.id,
                "store": self.tracker.uri, "running": running, "blocks": self.blocks(),
                "workers": self.workers, "finished": self.done, "failed": self.failed,
                "polled": self.polled, "paused": self.paused, "stopping": self.stopping,
                "log": str(self.files.log)}

    def write_status(self) -> None:
        """Rewrite the status file (at most every half second)."""
        if time.time() - self.written >= 0.5 or self.stopping:
            self.written = time.time()
            self.files.write_status(self.status())

    def heartbeat(self) -> None:
        """Record in the store that this agent is alive and what it does."""
        self.beat = time.time()
        status = self.status()
        try:    # straight to the store: a heartbeat is worth nothing later, from a spool
            self.tracker.online.set_tags(self.record_id, {
                "site.polled": f"{self.polled or self.beat:.3f}",
                "site.running": str(len(status["running"])),
                "site.blocks": ",".join(status["blocks"]),
                "site.finished": str(self.done), "site.failed": str(self.failed)})
        except Exception as exc:        # noqa: BLE001 - the next beat tries again
            log.warning("site %s: heartbeat failed: %s", self.name, one_line(exc))


def main(argv: list[str]) -> int:
    """Entry point of the agent process: its composed config's path is the argument."""
    cfg = OmegaConf.load(argv[0])
    assert isinstance(cfg, DictConfig)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("parsl").propagate = False     # Parsl logs to its runinfo/
    try:
        return Agent(cfg).run()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
