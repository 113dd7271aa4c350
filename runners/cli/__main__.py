"""``python -m runners.cli``: the ``bench`` command."""

import sys

from runners.cli.main import main

sys.exit(main())
