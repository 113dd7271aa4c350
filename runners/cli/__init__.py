"""The ``bench`` command: one module per verb (``runs``, ``ui``, ``compare``, ``regress``,
``report``, ``analytics``, ``publish``/``import``, ``nightly``, ``schedule``, ``sync``), the
shared options in ``options`` and the verb list in ``main``."""
