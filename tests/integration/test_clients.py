"""Clients in other languages: the Node.js example in clients/node against a private engine."""

from __future__ import annotations

import subprocess

from conftest import REPO, Engine

NODE_CLIENT = REPO / "clients" / "node"


def test_node_client_streams_a_run_and_talks_through_exec(engine: Engine) -> None:
    """The Node.js client (@grpc/grpc-js, the protos loaded as they are, the unix socket) gets a run's
    output and exit code from the Run stream, and cat's answer to its stdin through a bidirectional Exec."""
    done = subprocess.run(["node", str(NODE_CLIENT / "example.mjs"), engine.target], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["hello from node", "run exited with 3", "ping over exec", "exec exited with 0"]
