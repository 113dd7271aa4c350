"""The multi-node tier runs on a 4-node Slurm cluster on this host (``start.sh --nodes 4``:
each node a slurmd in its own UTS and mount namespaces, with its own /dev/shm). A cluster
that cannot start fails the tier; afterwards the cluster is as it was before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import slurm_cluster

NODES = 4


@pytest.fixture(scope="package", autouse=True)
def four_node_cluster() -> Iterator[None]:
    """node1..node4 for the tier; afterwards as it was."""
    with slurm_cluster(NODES):
        yield
