"""The experiment config: typed schemas, their registration with Hydra, validation, and
the Hydra entry point that turns bad input into one line and exit code 2."""
