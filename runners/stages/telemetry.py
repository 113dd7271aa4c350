"""Per-node telemetry while the trials run: one light sampler process per node of the
allocation (psutil: CPU, memory, load; NVML: GPU utilisation and memory where there is a
GPU), each writing ``telemetry.<host>.csv``.

:func:`start` runs on a Parsl worker before the first trial: it starts the samplers in
the background (one task per node through the machine's launcher, or one process on this
node) and passes the environment on to the trials.  :func:`stop` ends them after the
last trial and reads what they wrote.  ``python -m runners.stages.telemetry DIR
INTERVAL`` is one sampler.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from runners.stages.base import StageResult

FIELDS = ("t_s", "cpu_pct", "mem_pct", "load1", "gpu_util_pct", "gpu_mem_pct")


def gpu_reader() -> tuple[Any, str]:
    """A function giving (GPU utilisation %, GPU memory %) averaged over the node's GPUs,
    and what was found ('' when a GPU is read; else why not)."""
    try:
        import pynvml
    except ImportError:
        return None, "no NVML (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                   for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as exc:        # noqa: BLE001 - NVML without a GPU or driver
        return None, f"no GPU ({type(exc).__name__})"
    if not handles:
        return None, "no GPU"

    def read() -> tuple[float, float]:
        util = [pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles]
        mem = [pynvml.nvmlDeviceGetMemoryInfo(h) for h in handles]
        return (sum(util) / len(util), 100.0 * sum(m.used for m in mem) / sum(m.total for m in mem))
    return read, ""


def sample(out_dir: str, interval_s: float) -> None:
    """Sample this node every ``interval_s`` seconds into ``telemetry.<host>.csv`` until
    SIGTERM or SIGINT."""
    stop = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    gpu, _ = gpu_reader()
    path = Path(out_dir) / f"telemetry.{socket.gethostname()}.csv"
    t0 = time.monotonic()
    psutil.cpu_percent()            # the first call only starts the count
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(FIELDS)
        while not stop:
            time.sleep(interval_s)
            util, mem = gpu() if gpu else ("", "")
            out.writerow([f"{time.monotonic() - t0:.2f}", psutil.cpu_percent(),
                          psutil.virtual_memory().percent, os.getloadavg()[0], util, mem])
            fh.flush()


def start(after: StageResult, per_node: list[str] | None, out_dir: str,
          interval_s: float) -> StageResult:
    """Start the samplers in the background; pass ``after``'s data on with their pid."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    argv = [*(per_node or []), sys.executable, "-m", "runners.stages.telemetry", out_dir,
            str(interval_s)]
    if per_node and per_node[0] == "srun":
        argv.insert(1, "--overlap")     # the trials' steps share the nodes' CPUs with it
    with open(Path(out_dir) / "samplers.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return StageResult("telemetry", 0.0, {}, {}, [], {**after.data, "telemetry_pid": proc.pid})


def stop(pid: int, out_dir: str, wait_s: float = 15.0) -> StageResult:
    """End the samplers started by :func:`start` and summarise each node's samples.

    Returns
    -------
    StageResult
        Per node ``telemetry.<host>.cpu_pct_mean`` / ``_max``, ``mem_pct_max``,
        ``load1_max`` (and GPU figures where read); ``data["series"]``: every sample, by
        host; the CSV files as logs.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
        psutil.Process(pid).wait(wait_s)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    except psutil.TimeoutExpired:
        os.killpg(pid, signal.SIGKILL)
    metrics: dict[str, float] = {}
    series: dict[str, list[dict[str, float]]] = {}
    files = sorted(Path(out_dir).glob("telemetry.*.csv"))
    for path in files:
        host = path.name[len("telemetry."):-len(".csv")]
        with open(path) as fh:
            rows = [{k: float(v) for k, v in row.items() if v not in ("", None)}
                    for row in csv.DictReader(fh)]
        if not rows:
            continue
        series[host] = rows
        cpu = [r["cpu_pct"] for r in rows]
        metrics.update({f"telemetry.{host}.cpu_pct_mean": sum(cpu) / len(cpu),
                        f"telemetry.{host}.cpu_pct_max": max(cpu),
                        f"telemetry.{host}.mem_pct_max": max(r["mem_pct"] for r in rows),
                        f"telemetry.{host}.load1_max": max(r["load1"] for r in rows)})
        if "gpu_util_pct" in rows[0]:
            metrics[f"telemetry.{host}.gpu_util_pct_mean"] = sum(
                r["gpu_util_pct"] for r in rows) / len(rows)
            metrics[f"telemetry.{host}.gpu_mem_pct_max"] = max(r["gpu_mem_pct"] for r in rows)
    metrics["telemetry.nodes"] = float(len(series))
    _, no_gpu = gpu_reader()        # why there are no GPU figures (this node's view)
    return StageResult("telemetry", 0.0, metrics, {"telemetry.gpu": no_gpu or "read"},
                       [str(p) for p in files], {"series": series})


if __name__ == "__main__":
    sample(sys.argv[1], float(sys.argv[2]))
