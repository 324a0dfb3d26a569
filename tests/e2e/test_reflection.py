"""gRPC server reflection on the control plane: a client with none of Neon Grid's compiled protos lists the
services, fetches their descriptors and calls the API with messages built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2

from neon.security import pki
from tests.support.helpers import Cluster


def _ask(channel: grpc.Channel, version: str, **request: Any) -> Any:
    """One reflection request on the ``version`` service (v1 and v1alpha messages are the same on the wire)."""
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return next(iter(call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=30)))


@pytest.mark.e2e
def test_a_client_without_compiled_protos_finds_and_calls_the_api(tmp_path: Path, compiled_cache: Path) -> None:
    cluster = Cluster(tmp_path, compiled_cache, agents={})
    cluster.start()
    try:
        viewer = cluster.identity("someone", pki.VIEWER)
        with cluster.channel(cluster.control, viewer) as channel:
            for version in ("v1", "v1alpha"):
                listed = _ask(channel, version, list_services="")
                names = {s.name for s in listed.list_services_response.service}
                assert {"neon.v1.Control", "neon.v1.Join", "grpc.health.v1.Health"} <= names, (version, names)
                assert f"grpc.reflection.{version}.ServerReflection" in names, (version, names)

            # The descriptors of Control and what they import, into a pool of this client's own.
            pool = descriptor_pool.DescriptorPool()
            found = _ask(channel, "v1", file_containing_symbol="neon.v1.Control")
            files = [
                descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in found.file_descriptor_response.file_descriptor_proto
            ]
            pending = {f.name: f for f in files}
            while pending:  # add each file after the files it imports
                ready = [f for f in pending.values() if all(d not in pending for d in f.dependency)]
                assert ready, f"imports that reflection did not send: {sorted(pending)}"
                for f in ready:
                    pool.Add(f)
                    del pending[f.name]
            method = pool.FindServiceByName("neon.v1.Control").methods_by_name["ListNodes"]
            request_type = message_factory.GetMessageClass(method.input_type)
            reply_type = message_factory.GetMessageClass(method.output_type)
            list_nodes = channel.unary_unary(
                "/neon.v1.Control/ListNodes",
                request_serializer=request_type.SerializeToString,
                response_deserializer=reply_type.FromString,
            )
            assert list(list_nodes(request_type(), timeout=30).nodes) == []  # no agents in this cluster
    finally:
        cluster.stop()
