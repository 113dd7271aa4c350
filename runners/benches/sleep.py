"""A benchmark that sleeps: for trying sweeps and measuring the runner's own overhead.

    python sleep.py --seconds 1            # prints {"name": "slept_s", ...}
    python sleep.py --seconds 0 --exit 3   # fails with exit code 3 (a failing point)
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    """Sleep, print one result line (the JSON contract), exit with the given code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.0, help="how long to sleep")
    ap.add_argument("--exit", type=int, default=0, help="the exit code (non-zero: a failure)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.seconds > 0:
        time.sleep(args.seconds)
    print(json.dumps({"name": "slept_s", "value": time.perf_counter() - t0, "unit": "s",
                      "direction": "lower"}))
    return int(args.exit)


if __name__ == "__main__":
    raise SystemExit(main())
