"""Results branches: runs committed to a git repository as JSON records with git plumbing
only (``bench publish``), and read back (``bench import``)."""
