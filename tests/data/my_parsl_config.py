"""A user's own Parsl config module, as ``parsl-perf --config`` takes it."""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


def fresh_config() -> Config:
    """One worker on this host, labelled ``mine``."""
    return Config(executors=[HighThroughputExecutor(
        label="mine", address="127.0.0.1", loopback_address="127.0.0.1", encrypted=False,
        max_workers_per_node=1, provider=LocalProvider(init_blocks=1, max_blocks=1))],
        usage_tracking=0)
