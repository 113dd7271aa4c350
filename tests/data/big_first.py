"""A benchmark whose first call prints ~12 MiB of noise and later calls print one line.

    python big_first.py COUNTER_FILE
"""

import json
import sys
from pathlib import Path

counter = Path(sys.argv[1])
calls = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(calls + 1))
if not calls:
    sys.stdout.write(("noise " * 20 + "\n") * 100_000)
print(json.dumps({"name": "answer_s", "value": 0.5, "unit": "s"}))
