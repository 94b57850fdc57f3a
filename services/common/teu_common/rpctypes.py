"""The grpc types the services' adapters and interceptors name, with their type parameters in one
place: a servicer method's context carries no information mypy could use per call."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

#: The context of any RPC a servicer handles.
Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"  # a string: grpc's classes are generic only in its stubs
#: A method handler of any RPC, as interceptors see it.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
