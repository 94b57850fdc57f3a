"""The ``teu`` command-line interface."""
