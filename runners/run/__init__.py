"""A run's life: open the MLflow run, run the kind's stages and trials on Parsl, summarize,
close it with a status; the dry run; progress; reaping runs whose driver died."""
