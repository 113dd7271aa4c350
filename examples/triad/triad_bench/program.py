"""One trial of the triad: prints its bandwidth as a JSON result line."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    b, c = np.random.default_rng(0).random((2, args.size))
    a = np.empty_like(b)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - t0)
    moved = 3 * a.nbytes            # read b and c, write a
    print(json.dumps({"name": "triad_gbs", "value": moved / best / 1e9, "unit": "GB/s",
                      "direction": "higher"}))


if __name__ == "__main__":
    main()
