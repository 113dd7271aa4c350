"""STREAM's triad as a benchmark kind of hpc-bench-runner (an example from outside it)."""
