"""Compare ``runners/benches/osu.py`` with ``python -m mpi4py.bench pingpong``.

Runs, on the same number of ranks (default 2) and interleaved ``--repeats`` times:

* ``osu.py latency`` (half round-trip of a blocking ping-pong, µs, whole loop timed once),
* ``osu.py bw`` (64-message windowed streaming bandwidth, MB/s = 1e6 B/s),
* ``python -m mpi4py.bench pingpong`` (blocking ping-pong, every iteration timed
  separately; its "bandwidth" is ``size / (round trip / 2)``),

then prints one Markdown table with the median (and min–max) of each metric at the
chosen sizes, plus the ping-pong bandwidth implied by ``osu_latency`` so that the
two ping-pongs can be compared in both units.  ``--json PATH`` also saves every raw
sample for recording figures later.

Standalone: stdlib only (the benchmarks themselves need mpi4py and NumPy).  By
default it uses the ``mpiexec`` and ``python`` of the interpreter running it::

    .venv/bin/python benchmarks/osu_vs_mpi4py_bench.py [--np 2] [--repeats 3]
        [--sizes 1,1024,65536,1048576] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OSU = ROOT / "runners" / "benches" / "osu.py"
DEFAULT_SIZES = (1, 1024, 65536, 1 << 20)

Samples = dict[str, dict[int, list[float]]]
"""metric -> size -> one value per repeat."""


def _default_mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else (shutil.which("mpiexec") or "mpiexec")


def _run(cmd: Sequence[str], timeout: float) -> str:
    """Run a command, fail loudly on a non-zero exit, return stdout."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stderr.strip()}")
    return proc.stdout


def run_osu(mpiexec: str, python: str, nranks: int, test: str, max_size: int,
            timeout: float) -> dict[int, float]:
    """Run one ``osu.py`` test and return ``{size: value}``.

    Parameters
    ----------
    mpiexec, python : str
        Launcher and interpreter.
    nranks : int
        Number of MPI ranks.
    test : str
        ``latency`` or ``bw``.
    max_size : int
        Largest message size (a power of two).
    timeout : float
        Seconds before giving up.

    Returns
    -------
    dict of int to float
        Message size in bytes to µs (latency) or MB/s (bw).
    """
    out = _run([mpiexec, "-n", str(nranks), python, str(OSU), test,
                "--max-size", str(max_size)], timeout)
    values: dict[int, float] = {}
    for line in out.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            values[int(obj["step"])] = float(obj["value"])
    return values


def run_pingpong(mpiexec: str, python: str, nranks: int, max_size: int,
                 timeout: float) -> dict[int, tuple[float, float]]:
    """Run ``python -m mpi4py.bench pingpong`` and parse its table.

    Parameters
    ----------
    mpiexec, python : str
        Launcher and interpreter.
    nranks : int
        Number of MPI ranks.
    max_size : int
        Largest message size.
    timeout : float
        Seconds before giving up.

    Returns
    -------
    dict of int to (float, float)
        Message size to (bandwidth in MB/s, mean one-way time in µs).
    """
    out = _run([mpiexec, "-n", str(nranks), python, "-m", "mpi4py.bench", "pingpong",
                "--min-size", "1", "--max-size", str(max_size)], timeout)
    values: dict[int, tuple[float, float]] = {}
    for line in out.splitlines():
        # "   1024    425.36 | 2.4073548e-06 ± 3.2155e-05    10000"
        fields = line.replace("|", " ").split()
        if not fields or line.lstrip().startswith("#"):
            continue
        values[int(fields[0])] = (float(fields[1]), float(fields[2]) * 1e6)
    return values


def measure(mpiexec: str, python: str, nranks: int, sizes: Sequence[int], repeats: int,
            timeout: float) -> Samples:
    """Run the three benchmarks ``repeats`` times, interleaved.

    Parameters
    ----------
    mpiexec, python : str
        Launcher and interpreter.
    nranks : int
        Number of MPI ranks.
    sizes : sequence of int
        Message sizes to keep (powers of two).
    repeats : int
        Number of interleaved rounds.
    timeout : float
        Seconds allowed per benchmark run.

    Returns
    -------
    Samples
        ``metric -> size -> values``.
    """
    max_size = max(sizes)
    samples: Samples = {m: {s: [] for s in sizes} for m in
                        ("osu_latency_us", "pingpong_us", "osu_latency_bw_MBps",
                         "pingpong_bw_MBps", "osu_bw_MBps")}
    for _ in range(repeats):
        lat = run_osu(mpiexec, python, nranks, "latency", max_size, timeout)
        bw = run_osu(mpiexec, python, nranks, "bw", max_size, timeout)
        pp = run_pingpong(mpiexec, python, nranks, max_size, timeout)
        for s in sizes:
            samples["osu_latency_us"][s].append(lat[s])
            samples["osu_latency_bw_MBps"][s].append(s / lat[s])  # B/µs == MB/s
            samples["osu_bw_MBps"][s].append(bw[s])
            samples["pingpong_bw_MBps"][s].append(pp[s][0])
            samples["pingpong_us"][s].append(pp[s][1])
    return samples


def _fmt(values: list[float]) -> str:
    med = statistics.median(values)
    digits = 2 if med < 100 else 0
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def markdown(samples: Samples, sizes: Sequence[int], nranks: int, repeats: int) -> str:
    """Render the comparison as a Markdown table.

    Parameters
    ----------
    samples : Samples
        As returned by :func:`measure`.
    sizes : sequence of int
        Rows.
    nranks, repeats : int
        For the caption.

    Returns
    -------
    str
    """
    cols = [
        ("osu_latency [µs]", "osu_latency_us"),
        ("pingpong [µs]", "pingpong_us"),
        ("osu_latency as BW [MB/s]", "osu_latency_bw_MBps"),
        ("pingpong BW [MB/s]", "pingpong_bw_MBps"),
        ("osu_bw [MB/s]", "osu_bw_MBps"),
    ]
    lines = [
        f"{nranks} ranks, median (min–max) of {repeats} interleaved runs; "
        "MB = 1e6 bytes; µs = one-way (half round-trip).",
        "",
        "| Size | " + " | ".join(c for c, _ in cols) + " |",
        "|---:|" + "---:|" * len(cols),
    ]
    for s in sizes:
        lines.append(f"| {_size(s)} | " + " | ".join(_fmt(samples[k][s]) for _, k in cols)
                     + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the table.

    Parameters
    ----------
    argv : sequence of str, optional
        Command line without the program name.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--np", type=int, default=2, help="MPI ranks (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated power-of-two message sizes in bytes")
    parser.add_argument("--mpiexec", default=_default_mpiexec())
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed per benchmark run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save raw samples")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or any(s < 1 or s & (s - 1) for s in sizes):
        parser.error("--sizes must be positive powers of two")
    if args.np < 2 or args.repeats < 1:
        parser.error("--np must be >= 2 and --repeats >= 1")

    t0 = time.perf_counter()
    samples = measure(args.mpiexec, args.python, args.np, sizes, args.repeats, args.timeout)
    elapsed = time.perf_counter() - t0
    print(markdown(samples, sizes, args.np, args.repeats))
    print(f"\n(measured in {elapsed:.1f} s)")
    if args.json:
        record = {"nranks": args.np, "repeats": args.repeats, "sizes": sizes,
                  "samples": {m: {str(s): v for s, v in by.items()}
                              for m, by in samples.items()}}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
