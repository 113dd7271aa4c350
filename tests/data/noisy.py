"""A benchmark with a huge, partly non-UTF-8 output and its results in the middle and at
the end.

    python noisy.py MEGABYTES
"""

import json
import sys

out = sys.stdout.buffer
line = b"noise \xff\xfe\xc3 not utf-8 " + b"x" * 100 + b"\n"
half = int(float(sys.argv[1]) * 2**20 / len(line) / 2)
for _ in range(half):
    out.write(line)
out.write(json.dumps({"name": "middle", "value": 1.5}).encode() + b"\n")
for _ in range(half):
    out.write(line)
out.write(json.dumps({"name": "last", "value": 2.5}).encode() + b"\n")
