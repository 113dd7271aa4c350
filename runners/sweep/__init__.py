"""Sweeps (``python run.py -m``): the machinery behind the Hydra launcher plugin.  Every job
is composed and checked first, then all run concurrently through one Parsl
DataFlowKernel under one MLflow parent run."""
