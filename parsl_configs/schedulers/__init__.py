"""One module per scheduler, named after it, each setting ``SCHEDULER`` (a
:class:`parsl_configs.scheduler.Scheduler` record) and exposing ``fresh_config()`` where a
standalone config makes sense (``parsl-perf --config parsl_configs/schedulers/local.py``)."""
