"""Hydra entry point: compose the config, then hand it to ``runners``.

    python run.py machine=local fs=tmpfs bench=mpi4py_import bench.ranks=2
    python run.py -m bench.ranks=1,2 bench.trials=5
    python run.py --cfg job
"""

from omegaconf import DictConfig

from runners.config.entry import hydra_main


@hydra_main
def main(cfg: DictConfig) -> object:
    """Run one experiment (one job of a sweep)."""
    from runners.run.experiment import run_experiment

    return run_experiment(cfg)


if __name__ == "__main__":
    main()
