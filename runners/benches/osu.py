"""OSU MPI micro-benchmarks (latency, bw, bibw, bcast, allreduce) for mpi4py.

A standalone re-implementation of the OSU Micro-Benchmarks ``osu_latency``,
``osu_bw``, ``osu_bibw``, ``osu_bcast`` and ``osu_allreduce`` (and of mpi4py's
old ``demo/osu_*.py``) that needs only the standard library, mpi4py and NumPy.
It is copied to compute nodes as-is, so it must not import anything from this
project.

Usage::

    mpiexec -n 2 python osu.py <test> [--min-size BYTES] [--max-size BYTES]
        [--iterations N] [--warmup N] [--large-threshold BYTES]
        [--iterations-large N] [--warmup-large N]

with ``<test>`` one of ``latency``, ``bw``, ``bibw``, ``bcast``, ``allreduce``
or ``all`` (every test in that order, each with its own default sizes and
iteration counts unless given on the command line).

Conventions (as in OSU):

* message sizes are ``min-size``, then powers of two up to ``max-size``
  (both bounds must be 0 or a power of two; ``0`` is followed by ``1``);
* the first ``warmup`` iterations of every size are not timed;
* sizes strictly above ``large-threshold`` (default 8192 B) use
  ``iterations-large`` / ``warmup-large`` instead;
* buffers are ``numpy.uint8`` arrays of ``max-size`` bytes, filled before use
  (a never-written ``numpy.empty`` buffer maps every page to the kernel's shared
  zero page, which stays in cache and inflates large-message figures);
* ``latency`` is half the round-trip time of a blocking ping-pong, in µs;
* ``bw`` streams a window of 64 non-blocking sends then waits for a 4-byte
  acknowledgement; ``bibw`` does the same in both directions at once; both
  report MB/s with MB = 1e6 bytes;
* point-to-point tests run between ranks 0 and 1 (further ranks idle) and need
  at least 2 ranks;
* ``bcast`` (root 0) and ``allreduce`` (``float32`` sum, size in bytes, so
  sizes below 4 B are skipped) time every call separately, with a barrier
  between calls; the value is the average over ranks of each rank's mean
  latency, with the minimum and maximum over ranks in ``tags``.

Output: rank 0 prints one JSON line per message size on stdout, following the
project's result contract, e.g.::

    {"name": "osu_latency", "value": 2.41, "unit": "us", "direction": "lower",
     "step": 1024, "tags": {"size": 1024, "iterations": 1000, "ranks": 2}}

Invalid options print one line on stderr (from rank 0 only) and make every
rank exit with status 2 before any MPI communication.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # importing mpi4py.MPI initialises MPI: only do it in main()
    from mpi4py import MPI

__all__ = [
    "DEFAULTS",
    "MAX_SIZE_CAP",
    "TESTS",
    "Settings",
    "UsageError",
    "main",
    "message_sizes",
    "parse_args",
    "resolve",
]

EXIT_USAGE = 2
"""Exit status for invalid options or too few ranks."""

MAX_SIZE_CAP = 1 << 30
"""Largest accepted ``--max-size`` (1 GiB)."""

WINDOW_SIZE = 64
"""Number of messages in flight per iteration of ``bw`` / ``bibw`` (OSU default)."""

LARGE_THRESHOLD = 8192
"""Sizes strictly above this many bytes count as large (OSU ``LARGE_MESSAGE_SIZE``)."""

FLOAT32_BYTES = 4
"""Element size used by ``allreduce``."""

TAG_DATA = 100
TAG_ACK = 101
TAG_REVERSE = 10


@dataclass(frozen=True)
class TestDefaults:
    """Default sizes and iteration counts of one test.

    Attributes
    ----------
    min_size, max_size : int
        Message size range in bytes.
    iterations, warmup : int
        Timed and untimed iterations for sizes up to the large threshold.
    iterations_large, warmup_large : int
        The same above the large threshold.
    pt2pt : bool
        Whether the test is point-to-point (needs ranks 0 and 1).
    """

    min_size: int
    max_size: int
    iterations: int
    warmup: int
    iterations_large: int
    warmup_large: int
    pt2pt: bool


# OSU defaults are latency 10000/1000 (skip 100/10), bw 100/20 (skip 10/2) and
# collectives 1000/100 (skip 100/10).  Latency and the collectives are cut by ten
# for small messages so that a full default sweep on 2 ranks takes seconds.
DEFAULTS: dict[str, TestDefaults] = {
    "latency": TestDefaults(1, 1 << 22, 1000, 100, 100, 10, pt2pt=True),
    "bw": TestDefaults(1, 1 << 22, 100, 10, 20, 2, pt2pt=True),
    "bibw": TestDefaults(1, 1 << 22, 100, 10, 20, 2, pt2pt=True),
    "bcast": TestDefaults(1, 1 << 20, 1000, 100, 100, 10, pt2pt=False),
    "allreduce": TestDefaults(4, 1 << 20, 1000, 100, 100, 10, pt2pt=False),
}

TESTS: tuple[str, ...] = tuple(DEFAULTS)
"""Test names, in the order ``all`` runs them."""

NAMES = {test: f"osu_{test}" for test in TESTS}


class UsageError(Exception):
    """Invalid command line; the message is one line meant for stderr."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass(frozen=True)
class Settings:
    """Resolved options of one test run.

    Attributes
    ----------
    test : str
        One of :data:`TESTS`.
    min_size, max_size : int
        Message size bounds in bytes (0 or powers of two).
    iterations, warmup : int
        Timed and untimed iterations for sizes ``<= large_threshold``.
    large_threshold : int
        Size in bytes above which the ``*_large`` counts apply.
    iterations_large, warmup_large : int
        Timed and untimed iterations for sizes ``> large_threshold``.
    """

    test: str
    min_size: int
    max_size: int
    iterations: int
    warmup: int
    large_threshold: int
    iterations_large: int
    warmup_large: int

    def counts(self, size: int) -> tuple[int, int]:
        """Return ``(iterations, warmup)`` for a message size.

        Parameters
        ----------
        size : int
            Message size in bytes.

        Returns
        -------
        tuple of int
            Timed iterations and warm-up iterations.
        """
        if size > self.large_threshold:
            return self.iterations_large, self.warmup_large
        return self.iterations, self.warmup


def _is_pow2_or_zero(n: int) -> bool:
    return n == 0 or (n > 0 and n & (n - 1) == 0)


def message_sizes(min_size: int, max_size: int, multiple_of: int = 1) -> list[int]:
    """List the message sizes of a sweep.

    Parameters
    ----------
    min_size : int
        First size (0 or a power of two).
    max_size : int
        Last size, inclusive.
    multiple_of : int
        Drop sizes that are not a positive multiple of this (``allreduce`` uses
        4 so that every message holds at least one ``float32``).

    Returns
    -------
    list of int
        ``min_size``, then doubling (``0`` is followed by ``1``) while ``<= max_size``.
    """
    sizes: list[int] = []
    size = min_size
    while size <= max_size:
        if multiple_of == 1 or (size > 0 and size % multiple_of == 0):
            sizes.append(size)
        size = size * 2 if size else 1
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (without validating value ranges).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    argparse.Namespace
        With ``test`` and the options, ``None`` where not given.

    Raises
    ------
    UsageError
        On unknown tests/options or non-integer values.
    """
    parser = _Parser(
        prog="osu.py",
        description="OSU MPI micro-benchmarks for mpi4py; prints JSON result lines.",
    )
    parser.add_argument("test", choices=[*TESTS, "all"], help="benchmark to run")
    parser.add_argument("--min-size", type=int, metavar="BYTES",
                        help="smallest message size (0 or a power of two)")
    parser.add_argument("--max-size", type=int, metavar="BYTES",
                        help="largest message size (a power of two, at most 1 GiB)")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help="timed iterations per size up to the large threshold")
    parser.add_argument("--warmup", type=int, metavar="N",
                        help="untimed warm-up iterations per size up to the large threshold")
    parser.add_argument("--large-threshold", type=int, metavar="BYTES",
                        default=LARGE_THRESHOLD,
                        help=f"sizes above this are large (default {LARGE_THRESHOLD})")
    parser.add_argument("--iterations-large", type=int, metavar="N",
                        help="timed iterations per large size")
    parser.add_argument("--warmup-large", type=int, metavar="N",
                        help="untimed warm-up iterations per large size")
    return parser.parse_args(argv)


def resolve(args: argparse.Namespace) -> list[Settings]:
    """Apply per-test defaults and validate the options.

    Parameters
    ----------
    args : argparse.Namespace
        As returned by :func:`parse_args`.

    Returns
    -------
    list of Settings
        One per test to run (five for ``all``).

    Raises
    ------
    UsageError
        When a value is out of range or the size bounds are inconsistent.
    """
    for opt in ("min_size", "max_size", "large_threshold", "warmup", "warmup_large"):
        value = getattr(args, opt)
        if value is not None and value < 0:
            raise UsageError(f"--{opt.replace('_', '-')} must be >= 0, got {value}")
    for opt in ("iterations", "iterations_large"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise UsageError(f"--{opt.replace('_', '-')} must be >= 1, got {value}")
    for opt in ("min_size", "max_size"):
        value = getattr(args, opt)
        if value is not None and not _is_pow2_or_zero(value):
            raise UsageError(f"--{opt.replace('_', '-')} must be 0 or a power of two, "
                             f"got {value}")
    if args.max_size is not None and args.max_size > MAX_SIZE_CAP:
        raise UsageError(f"--max-size must be at most {MAX_SIZE_CAP} (1 GiB), "
                         f"got {args.max_size}")

    tests = TESTS if args.test == "all" else (args.test,)
    out: list[Settings] = []
    for test in tests:
        d = DEFAULTS[test]
        min_size = d.min_size if args.min_size is None else args.min_size
        max_size = d.max_size if args.max_size is None else args.max_size
        if args.min_size is not None and args.max_size is None:
            max_size = max(max_size, min_size)
        if args.max_size is not None and args.min_size is None:
            min_size = min(min_size, max_size)
        if min_size > max_size:
            raise UsageError(f"--min-size ({min_size}) must not exceed --max-size ({max_size})")
        if test == "allreduce" and max_size < FLOAT32_BYTES:
            raise UsageError(f"allreduce needs --max-size >= {FLOAT32_BYTES} "
                             f"(one float32), got {max_size}")
        out.append(Settings(
            test=test,
            min_size=min_size,
            max_size=max_size,
            iterations=d.iterations if args.iterations is None else args.iterations,
            warmup=d.warmup if args.warmup is None else args.warmup,
            large_threshold=args.large_threshold,
            iterations_large=(d.iterations_large if args.iterations_large is None
                              else args.iterations_large),
            warmup_large=d.warmup_large if args.warmup_large is None else args.warmup_large,
        ))
    return out


def _buffer(nbytes: int, fill: int) -> npt.NDArray[np.uint8]:
    """Allocate a byte buffer and touch every page (OSU ``set_buffer``)."""
    buf = np.empty(max(nbytes, 1), dtype=np.uint8)
    buf.fill(fill)
    return buf


def _emit(name: str, value: float, unit: str, direction: str, size: int,
          tags: dict[str, Any]) -> None:
    """Print one result line of the project's JSON contract."""
    line = {"name": name, "value": value, "unit": unit, "direction": direction,
            "step": size, "tags": {"size": size, **tags}}
    print(json.dumps(line), flush=True)


def run_latency(comm: MPI.Intracomm, s: Settings) -> None:
    """Blocking ping-pong between ranks 0 and 1 (``osu_latency``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator with at least 2 ranks.
    s : Settings
        Sizes and iteration counts.
    """
    from mpi4py import MPI

    rank = comm.Get_rank()
    s_buf = _buffer(s.max_size, ord("a"))
    r_buf = _buffer(s.max_size, ord("b"))
    for size in message_sizes(s.min_size, s.max_size):
        iters, skip = s.counts(size)
        s_msg = [s_buf, size, MPI.BYTE]
        r_msg = [r_buf, size, MPI.BYTE]
        comm.Barrier()
        t_start = t_end = 0.0
        if rank == 0:
            for i in range(iters + skip):
                if i == skip:
                    t_start = MPI.Wtime()
                comm.Send(s_msg, 1, TAG_DATA)
                comm.Recv(r_msg, 1, TAG_DATA)
            t_end = MPI.Wtime()
        elif rank == 1:
            for _ in range(iters + skip):
                comm.Recv(r_msg, 0, TAG_DATA)
                comm.Send(s_msg, 0, TAG_DATA)
        if rank == 0:
            latency = (t_end - t_start) * 1e6 / (2 * iters)
            _emit(NAMES["latency"], latency, "us", "lower", size,
                  {"iterations": iters, "ranks": comm.Get_size()})


def _run_bandwidth(comm: MPI.Intracomm, s: Settings, bidirectional: bool) -> None:
    """Windowed streaming bandwidth between ranks 0 and 1 (``osu_bw`` / ``osu_bibw``)."""
    from mpi4py import MPI

    rank = comm.Get_rank()
    s_buf = _buffer(s.max_size, ord("a"))
    r_buf = _buffer(s.max_size, ord("b"))
    ack = _buffer(4, 0)
    peer = 1 - rank
    for size in message_sizes(s.min_size, s.max_size):
        iters, skip = s.counts(size)
        s_msg = [s_buf, size, MPI.BYTE]
        r_msg = [r_buf, size, MPI.BYTE]
        comm.Barrier()
        t_start = t_end = 0.0
        if rank in (0, 1) and bidirectional:
            # rank 0 receives on TAG_REVERSE and sends on TAG_DATA; rank 1 the reverse
            send_tag, recv_tag = (TAG_DATA, TAG_REVERSE) if rank == 0 else (TAG_REVERSE, TAG_DATA)
            for i in range(iters + skip):
                if i == skip:
                    t_start = MPI.Wtime()
                reqs = [comm.Irecv(r_msg, peer, recv_tag) for _ in range(WINDOW_SIZE)]
                reqs += [comm.Isend(s_msg, peer, send_tag) for _ in range(WINDOW_SIZE)]
                MPI.Request.Waitall(reqs)
            t_end = MPI.Wtime()
        elif rank == 0:
            for i in range(iters + skip):
                if i == skip:
                    t_start = MPI.Wtime()
                reqs = [comm.Isend(s_msg, 1, TAG_DATA) for _ in range(WINDOW_SIZE)]
                MPI.Request.Waitall(reqs)
                comm.Recv([ack, 4, MPI.BYTE], 1, TAG_ACK)
            t_end = MPI.Wtime()
        elif rank == 1:
            for _ in range(iters + skip):
                reqs = [comm.Irecv(r_msg, 0, TAG_DATA) for _ in range(WINDOW_SIZE)]
                MPI.Request.Waitall(reqs)
                comm.Send([ack, 4, MPI.BYTE], 0, TAG_ACK)
        if rank == 0:
            directions = 2 if bidirectional else 1
            megabytes = size / 1e6 * iters * WINDOW_SIZE * directions
            test = "bibw" if bidirectional else "bw"
            _emit(NAMES[test], megabytes / (t_end - t_start), "MB/s", "higher", size,
                  {"iterations": iters, "ranks": comm.Get_size(), "window": WINDOW_SIZE})


def run_bw(comm: MPI.Intracomm, s: Settings) -> None:
    """Unidirectional bandwidth, rank 0 to rank 1 (``osu_bw``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator with at least 2 ranks.
    s : Settings
        Sizes and iteration counts.
    """
    _run_bandwidth(comm, s, bidirectional=False)


def run_bibw(comm: MPI.Intracomm, s: Settings) -> None:
    """Bidirectional bandwidth between ranks 0 and 1 (``osu_bibw``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator with at least 2 ranks.
    s : Settings
        Sizes and iteration counts.
    """
    _run_bandwidth(comm, s, bidirectional=True)


def _run_collective(comm: MPI.Intracomm, s: Settings, test: str) -> None:
    """Time one collective per call with a barrier in between (``osu_bcast``/``osu_allreduce``)."""
    from mpi4py import MPI

    is_allreduce = test == "allreduce"
    if is_allreduce:
        count = max(s.max_size // FLOAT32_BYTES, 1)
        send_f = np.ones(count, dtype=np.float32)
        recv_f = np.zeros(count, dtype=np.float32)
        sizes = message_sizes(s.min_size, s.max_size, multiple_of=FLOAT32_BYTES)
    else:
        buf = _buffer(s.max_size, ord("a"))
        sizes = message_sizes(s.min_size, s.max_size)
    nranks = comm.Get_size()
    mine, lo, hi, total = (np.zeros(1, dtype=np.float64) for _ in range(4))
    for size in sizes:
        iters, skip = s.counts(size)
        call: Callable[[], object]
        if is_allreduce:
            n = size // FLOAT32_BYTES
            call = partial(comm.Allreduce, [send_f, n, MPI.FLOAT], [recv_f, n, MPI.FLOAT], MPI.SUM)
        else:
            call = partial(comm.Bcast, [buf, size, MPI.BYTE], 0)
        comm.Barrier()
        timer = 0.0
        for i in range(iters + skip):
            t_start = MPI.Wtime()
            call()
            t_stop = MPI.Wtime()
            if i >= skip:
                timer += t_stop - t_start
            comm.Barrier()
        mine[0] = timer * 1e6 / iters
        comm.Reduce(mine, lo, op=MPI.MIN, root=0)
        comm.Reduce(mine, hi, op=MPI.MAX, root=0)
        comm.Reduce(mine, total, op=MPI.SUM, root=0)
        if comm.Get_rank() == 0:
            _emit(NAMES[test], float(total[0]) / nranks, "us", "lower", size,
                  {"iterations": iters, "ranks": nranks,
                   "min_us": float(lo[0]), "max_us": float(hi[0])})


def run_bcast(comm: MPI.Intracomm, s: Settings) -> None:
    """Broadcast latency from root 0 (``osu_bcast``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Any communicator.
    s : Settings
        Sizes and iteration counts.
    """
    _run_collective(comm, s, "bcast")


def run_allreduce(comm: MPI.Intracomm, s: Settings) -> None:
    """``float32`` sum all-reduce latency (``osu_allreduce``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Any communicator.
    s : Settings
        Sizes (bytes; sizes that are not a multiple of 4 are skipped) and
        iteration counts.
    """
    _run_collective(comm, s, "allreduce")


RUNNERS: dict[str, Callable[[MPI.Intracomm, Settings], None]] = {
    "latency": run_latency,
    "bw": run_bw,
    "bibw": run_bibw,
    "bcast": run_bcast,
    "allreduce": run_allreduce,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested benchmark(s) on ``MPI.COMM_WORLD``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 on success, 2 on invalid options or too few ranks (on every rank;
        only rank 0 prints the message).
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    try:
        # only rank 0 may print --help; other ranks parse silently
        with contextlib.redirect_stdout(sys.stdout if rank == 0 else io.StringIO()):
            settings = resolve(parse_args(argv))
        if comm.Get_size() < 2 and any(DEFAULTS[s.test].pt2pt for s in settings):
            raise UsageError(f"point-to-point tests need at least 2 MPI ranks, "
                             f"got {comm.Get_size()} (run with mpiexec -n 2)")
    except UsageError as exc:
        if rank == 0:
            print(f"osu.py: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    for s in settings:
        RUNNERS[s.test](comm, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
