"""gRPC server reflection: a client with no compiled protos (grpcurl, Postman, a Node.js client) asks the
server which services it has and gets their descriptors.

grpcio-reflection serves ``grpc.reflection.v1alpha.ServerReflection``; clients now ask for
``grpc.reflection.v1.ServerReflection`` first. The two versions' messages are the same on the wire (the
same fields, numbers and types; only the package differs), so the one servicer answers both names.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1 = "grpc.reflection.v1.ServerReflection"


def add_reflection(server: grpc.aio.Server, service_names: list[str]) -> None:
    """Serve reflection on ``server`` for ``service_names`` (and for reflection itself), both versions."""
    names = [*service_names, reflection.SERVICE_NAME, V1]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # v1alpha
    handler: Any = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": handler}),))
