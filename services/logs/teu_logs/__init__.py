"""The logs service: collects, rotates and serves every container's stdout and stderr."""
