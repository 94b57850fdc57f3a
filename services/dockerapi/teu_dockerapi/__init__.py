"""Teu's Docker Engine API: Docker's REST API over HTTP/1.1 on ``/run/teu/docker.sock``, so that the
docker CLI, docker-py and docker-compose drive Teu. A client of the gateway's public gRPC API only."""
