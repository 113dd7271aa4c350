"""Sanity check for an MPI build (seed 000's printRank.py): every rank says hello.

    mpiexec -n 2 python print_rank.py   →   Hello from rank 0 of 2 on <host>
"""

import socket
import sys

from mpi4py import MPI


def main() -> int:
    """Print one line per rank, in rank order."""
    comm = MPI.COMM_WORLD
    lines = comm.gather(f"Hello from rank {comm.Get_rank()} of {comm.Get_size()} "
                        f"on {socket.gethostname()}", root=0)
    if lines:
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
