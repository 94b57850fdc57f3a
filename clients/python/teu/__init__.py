"""Teu's Python SDK (:mod:`teu.client`) and the ``teu`` command (:mod:`teu.cli`)."""
