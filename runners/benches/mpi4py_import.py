"""mpi4py-import: every MPI rank imports a package suite; rank 0 prints per-rank times.

Runs ON the machine with the benchmark environment's python (stdlib + mpi4py only), e.g.::

    mpiexec -n 4 python mpi4py_import.py numpy scipy

Output (the project's JSON-lines contract), one line per rank and measure::

    {"name": "import_s", "value": 0.083, "unit": "s", "direction": "lower", "step": 0,
     "tags": {"rank": 0, "host": "nid0001", "launch_step": "0"}}

``launch_step`` is the launcher's step id as the rank saw it (``SLURM_STEP_ID`` under
srun, ``PMI_RANK`` under mpiexec), so a run shows how its ranks were started.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402


def main(packages: list[str]) -> int:
    """Import mpi4py.MPI, then the packages; gather the timings on rank 0 and print them.

    Parameters
    ----------
    packages : list of str
        Module names to import.

    Returns
    -------
    int
        The exit code.
    """
    t0 = time.perf_counter()
    from mpi4py import MPI

    t1 = time.perf_counter()
    comm = MPI.COMM_WORLD
    error = ""
    try:
        for name in packages:
            importlib.import_module(name)
    except Exception as exc:  # report which rank failed, then fail the job
        error = f"{type(exc).__name__}: {exc}"
    t2 = time.perf_counter()
    step = os.environ.get("SLURM_STEP_ID") or os.environ.get("PMI_RANK") or ""
    row = (t1 - t0, t2 - t1, t2 - T_START, f"{socket.gethostname()}|{step}", error)
    rows = comm.gather(row, root=0)
    if comm.Get_rank() != 0 or rows is None:
        return 1 if error else 0
    failed = [(r, e) for r, (*_, e) in enumerate(rows) if e]
    if failed:
        print(f"rank {failed[0][0]}: {failed[0][1]}", file=sys.stderr)
        return 1
    for rank, (mpi_s, import_s, total_s, where, _) in enumerate(rows):
        host, _, step = where.partition("|")
        tags = {"rank": rank, "host": host, "launch_step": step}
        for name, value in (("mpi_init_s", mpi_s), ("import_s", import_s),
                            ("rank_total_s", total_s)):
            print(json.dumps({"name": name, "value": value, "unit": "s", "direction": "lower",
                              "step": rank, "tags": tags}))
    print(json.dumps({"name": "ranks", "value": comm.Get_size(), "unit": "",
                      "direction": "higher"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
