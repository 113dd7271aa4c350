"""The Slurm tier runs on the one-node cluster and leaves no daemon behind: the cluster
it starts is stopped at the end of the tier; a cluster that was already up (a developer's
own) is left running, with its node count.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import slurm_cluster


@pytest.fixture(scope="package", autouse=True)
def one_node_cluster() -> Iterator[None]:
    """The one-node cluster for the tier; afterwards as it was."""
    with slurm_cluster(1):
        yield
