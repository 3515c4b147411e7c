"""asc-auto: search low-memory acoustic scene classifiers under a hard model-size limit."""

__version__ = "0.1.0"
