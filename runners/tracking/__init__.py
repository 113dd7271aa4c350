"""The tracking store: the ONLY package that imports mlflow.

``tracker`` routes a run's writes (redacted) to the online writer or, when the tracking
server cannot be reached, to the spool; ``writer`` writes to MLflow, ``spool`` journals
locally, ``sync`` and ``replay`` upload journals and imported records, ``query`` and
``sql`` read runs in bulk, ``redact`` keeps secrets out, ``server`` probes a server,
``store`` opens a store and ``driver`` names the process that writes.
"""
