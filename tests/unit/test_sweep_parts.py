"""The pieces of a sweep, one by one: ids, points, draws, executors, logs, stale runs."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from omegaconf import OmegaConf

from runners.run import reap
from runners.run.progress import Progress
from runners.sweep import jobs as sw
from runners.sweep import sweep as sweep_module
from runners.sweep.sweep import LogRouter, Sweep
from runners.tracking import driver
from runners.tracking.tracker import Tracker
from tests.support import Store


def job(num: int, overrides: list[str], **machine: object) -> sw.Job:
    cfg = OmegaConf.create({"machine": {"name": "local", "max_workers": 2,
                                        "filesystems": {"tmpfs": {"directives": []}},
                                        **machine},
                            "fs": {"name": "tmpfs"}, "hydra": {}})
    return sw.Job(num, overrides, cfg)


def test_sweep_id_ignores_the_store_paths_and_sweep_options() -> None:
    a = sw.sweep_id(["bench.ranks=1,2", "tracking.uri=sqlite:///a.db", "rerun=true"])
    b = sw.sweep_id(["tracking.uri=sqlite:///b.db", "bench.ranks=1,2", "seed=3"])
    assert a == b
    assert a != sw.sweep_id(["bench.ranks=1,2,4"])


def test_points_name_only_what_differs_between_jobs() -> None:
    jobs = [job(0, ["bench=osu", "bench.ranks=2", "fs=tmpfs"]),
            job(1, ["bench=osu", "bench.ranks=4", "fs=tmpfs"])]
    sw.name_points(jobs)
    assert [j.point for j in jobs] == ["bench.ranks=2", "bench.ranks=4"]


def test_a_seeded_draw_repeats_and_an_unseeded_one_records_its_seed() -> None:
    jobs = [job(i, [f"bench.ranks={i}"]) for i in range(50)]
    picks = {sw.draw(jobs, 5)[0].num for _ in range(5)}
    assert len(picks) == 1
    chosen, seed = sw.draw(jobs, None)
    assert sw.draw(jobs, seed)[0] is chosen
    assert len({sw.draw(jobs, s)[0].num for s in range(40)}) > 5     # it does vary


def test_one_executor_per_distinct_machine_config() -> None:
    jobs = [job(0, []), job(1, []), job(2, [], max_workers=1),
            job(3, [], name="docker-slurm")]
    sw.executor_labels(jobs)
    assert [j.label for j in jobs] == ["local-1", "local-1", "local-2", "docker-slurm"]


def test_log_records_of_each_job_thread_go_to_its_own_file(tmp_path: Path) -> None:
    router = LogRouter(tmp_path)
    router.install()
    log = logging.getLogger("runners.test")

    def body(n: int) -> None:
        router.add(threading.current_thread().name, tmp_path / f"{n}.log")
        log.info("hello from %d", n)

    threads = [threading.Thread(target=body, args=(n,), name=f"job-{n}") for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.info("from the driver")
    router.close()
    for n in range(3):
        assert f"hello from {n}" in (tmp_path / f"{n}.log").read_text()
        assert "driver" not in (tmp_path / f"{n}.log").read_text()
    assert "from the driver" in (tmp_path / "sweep.log").read_text()


def test_a_jobs_log_file_is_opened_in_the_main_thread_before_its_thread_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Hydra's log set-up for the next job, in the main thread, flushes every handler; one
    # that a job thread was still making had no stream yet and failed the sweep.
    router = LogRouter(tmp_path)
    one = job(0, ["bench.trials=1"])
    sweep = Sweep([one], None, None, None, "parent", "tag", {}, router)  # type: ignore[arg-type]
    made: list[tuple[str, list[str], str]] = []

    class Held:
        """A thread that is made but not started: what the main thread did before it."""

        def __init__(self, **kw: object) -> None:
            made.append((str(kw["name"]), list(router.files), threading.current_thread().name))

        def start(self) -> None:
            pass

    monkeypatch.setattr(sweep_module.threading, "Thread", Held)
    (tmp_path / "0").mkdir()          # Hydra's run_job makes it before the task runs
    sweep.start(one, one.task, tmp_path / "0")
    assert made == [("job-0", ["job-0"], threading.current_thread().name)]
    router.close()


def test_the_sweep_progress_line_counts_jobs() -> None:
    class Tty:
        text = ""

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    stream = Tty()
    bar = Progress(4, "jobs", stream)   # type: ignore[arg-type]
    bar.update(done=2, note="ok 1  failed 1  running 2")
    assert "2/4 jobs  ok 1  failed 1  running 2" in stream.text and "ETA" in stream.text
    quiet = Tty()
    Progress(4, "jobs", quiet, enabled=False).update(done=1)     # type: ignore[arg-type]
    assert quiet.text == ""


def test_driver_liveness_by_pid_and_start_time() -> None:
    assert driver.driver_alive(driver.driver_tags()) is True
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    tags = {"driver.host": socket.gethostname(), "driver.pid": str(dead.pid),
            "driver.started": f"{started:.2f}"}
    assert driver.driver_alive(tags) is False
    reused = {**driver.driver_tags(), "driver.started": "1.0"}     # same pid, other process
    assert driver.driver_alive(reused) is False
    assert driver.driver_alive({**tags, "driver.host": "elsewhere"}) is None


def test_reap_stale_ends_only_runs_of_dead_drivers_and_kills_their_orphans(
        store: Store) -> None:
    tracker = Tracker(store.uri, str(store.artifacts))
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              env={"BENCH_DRIVER": f"{socket.gethostname()}:1:2.00"})
    dead = {"driver.host": socket.gethostname(), "driver.pid": "1", "driver.started": "2.00"}
    stale = tracker.start_run("e", "stale", {}, dead)
    alive = tracker.start_run("e", "alive", {}, driver.driver_tags())
    other = tracker.start_run("e", "other", {}, {**dead, "driver.host": "elsewhere"})
    assert reap.reap_stale(tracker, ["e"], "a test") == [stale]
    run = store.client().get_run(stale)
    assert run.info.status == "KILLED" and run.data.tags["failure.kind"] == "driver_killed"
    assert "marked KILLED at the next start by a test" in run.data.tags["failure.message"]
    for run_id in (alive, other):
        assert store.client().get_run(run_id).info.status == "RUNNING"
    orphan.wait(timeout=10)      # stopped long before its 60 s sleep (psutil reaped it)
    assert not psutil.pid_exists(orphan.pid)


def test_a_closed_run_keeps_its_status(store: Store) -> None:
    tracker = Tracker(store.uri, str(store.artifacts))
    run_id = tracker.start_run("e", "r", {}, {})
    tracker.fail_run(run_id, "interrupted", "interrupted", "stop", status="KILLED")
    tracker.fail_run(run_id, "bench", "worker_lost", "late news")
    run = store.client().get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["failure.kind"] == "interrupted"


@pytest.mark.usefixtures("hydra_restore_singletons")     # Hydra's version base is global
def test_fast_composition_equals_hydras_own() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from runners.config.register import CONF_DIR, register_configs
    from runners.sweep.compose import Composer

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        master = compose("config", overrides=[], return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        composer = Composer(loader, master)
        jobs = [["bench=sleep", f"bench.params.seconds={s}", f"+bench.params.k={k}",
                 f"machine={m}", "machine.max_workers=1", "~tags"]
                for s in (0, 0.5) for k in ("a", "b") for m in ("local", "docker-slurm")]
        for num, overrides in enumerate(jobs):
            fast = composer(overrides, num)
            full = composer.full(overrides)
            full.hydra.job.id = full.hydra.job.num = num
            assert OmegaConf.to_container(fast) == OmegaConf.to_container(full), overrides
        assert len(composer.templates) == 2        # one Hydra composition per machine
        assert fast.bench.params.k == "b" and fast.machine.name == "docker-slurm"
