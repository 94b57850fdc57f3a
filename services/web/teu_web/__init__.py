"""Teu's web page: a client of the gateway's public API serving a page and a small JSON/WebSocket API."""
