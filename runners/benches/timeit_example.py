"""An example of a project's own benchmark plugged in with ``bench=command``.

Times a few pure-Python operations with timeit and prints the result lines of the
runner's JSON contract (name, value, unit, direction; optional step and tags)::

    python timeit_example.py --n 20000
"""

from __future__ import annotations

import argparse
import json
import timeit


def main() -> int:
    """Time three snippets at growing sizes; print one JSON line per size and snippet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="the largest size")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    snippets = {"sort_us": "sorted(data)", "sum_us": "sum(data)",
                "dict_build_us": "{x: x for x in data}"}
    size = 1000
    while size <= args.n:
        setup = f"import random; random.seed(0); data = [random.random() for _ in range({size})]"
        for name, stmt in snippets.items():
            best = min(timeit.repeat(stmt, setup, number=10, repeat=args.repeat)) / 10
            print(json.dumps({"name": name, "value": best * 1e6, "unit": "us",
                              "direction": "lower", "step": size, "tags": {"n": size}}))
        size *= 2
    total = min(timeit.repeat("sorted(data)", f"data = list(range({args.n}, 0, -1))",
                              number=10, repeat=args.repeat)) / 10
    print(json.dumps({"name": "sort_reversed_us", "value": total * 1e6, "unit": "us",
                      "direction": "lower"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
