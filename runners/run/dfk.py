"""Start and stop Parsl's DataFlowKernel so that Ctrl-C and SIGTERM end a run promptly.

Ctrl-C in a terminal sends SIGINT to the whole process group, and ``kill -- -PGID`` sends
SIGTERM to it: Parsl's interchange (a child process) dies of it, and ``dfk.cleanup()``
then waits for ever for the dead interchange to list its managers while scaling in.
Here the interchange and the local worker pools are started with SIGINT ignored (an
ignored signal stays ignored across ``exec``), so Ctrl-C reaches the driver only; and
:func:`stop` cancels the blocks of an executor whose interchange is gone itself, so
Parsl skips the scale-in that would hang.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parsl.config import Config
    from parsl.dataflow.dflow import DataFlowKernel

log = logging.getLogger(__name__)


def start(config: Config) -> DataFlowKernel:
    """A DataFlowKernel whose child processes ignore the terminal's SIGINT."""
    from parsl.dataflow.dflow import DataFlowKernel

    if threading.current_thread() is not threading.main_thread():
        return DataFlowKernel(config)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return DataFlowKernel(config)
    finally:
        signal.signal(signal.SIGINT, previous)


def stop(dfk: DataFlowKernel) -> None:
    """``dfk.cleanup()``, also when an executor's interchange has died: its blocks (local
    worker pools, batch jobs) are cancelled here first and the executor marked bad, so
    Parsl does not ask the dead interchange anything."""
    executor: Any
    for executor in dfk.executors.values():     # the status-handling executors (HTEX)
        proc: Any = getattr(executor, "interchange_proc", None)
        if proc is None or proc.poll() is None or executor.bad_state_is_set:
            continue
        jobs = [str(j) for j in getattr(executor, "blocks_to_job_id", {}).values()]
        log.warning("executor %s: its interchange ended (exit %s); cancelling blocks %s",
                    executor.label, proc.returncode, jobs)
        provider: Any = getattr(executor, "provider", None)
        if jobs and provider is not None:
            try:
                provider.cancel(jobs)
            except Exception as exc:        # noqa: BLE001 - cleanup goes on regardless
                log.warning("cancelling blocks %s failed: %s", jobs, exc)
        executor.set_bad_state_and_fail_all(RuntimeError("the interchange ended"))
    dfk.cleanup()
