"""Worker-side steps of a run: build and stage environments, the mpi4py CI stages, trials
with their measurement, the benchmark output contract and MPI launch lines.  Nothing here
touches MLflow; each stage returns a ``StageResult`` or raises a ``StageError``."""
