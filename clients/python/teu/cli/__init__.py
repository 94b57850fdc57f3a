"""The ``teu`` command-line interface."""

VERSION = "0.1.0"
