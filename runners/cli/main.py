"""The ``bench`` command: verbs over the MLflow store (``bench --help``, ``bench VERB --help``).

Heavy imports (mlflow, pandas) happen inside the verbs, so ``--help`` answers fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runners.cli import (
    analytics,
    baseline,
    bisect,
    compare,
    nightly,
    options,
    publish,
    regress,
    report,
    runs,
    scaling,
    schedule,
    site,
    sync,
    ui,
)

#: Every verb's module, in the order ``bench --help`` lists them; each registers its verbs.
VERBS = (runs, ui, compare, scaling, regress, baseline, report, analytics, publish, nightly,
         bisect, schedule, site, sync)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per verb."""
    return options.parser(VERBS, __doc__.splitlines()[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bench`` console script."""
    return options.run_verb(VERBS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
