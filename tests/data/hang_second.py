"""A benchmark whose first call answers and every later call hangs (a stage that hangs).

    python hang_second.py COUNTER_FILE
"""

import json
import sys
import time
from pathlib import Path

counter = Path(sys.argv[1])
calls = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(calls + 1))
if calls:
    time.sleep(3600)
print(json.dumps({"name": "answer_s", "value": 0.25, "unit": "s"}))
