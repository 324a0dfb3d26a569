"""The agent's DataPlane service: calls into the components it runs.

It is served by a synchronous gRPC server (:func:`neon.rpc.create_sync_server`):
a call's handler runs the guest in grpc's own thread, so a forwarded call costs
no hop to an event loop and back (bench/forwarding.py measures what that saves).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Iterator

from agent.forwarder import set_call_deadline
from agent.logbook import Line
from agent.runtime import FunctionRef
from neon import log
from neon._proto import dataplane_pb2, dataplane_pb2_grpc
from neon._validate import loads_json
from neon.errors import InvalidArgument, PermissionDenied
from neon.rpc import SyncContext, edge
from neon.tls import peer_of

if TYPE_CHECKING:
    from agent.agent import Agent

_log = log.get("neon.agent.dataplane")


class DataPlaneServicer(dataplane_pb2_grpc.DataPlaneServicer):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    @edge
    def Call(self, request: dataplane_pb2.CallRequest, context: SyncContext) -> dataplane_pb2.CallResponse:
        peer = peer_of(context)
        if peer.authenticated and peer.name not in self.agent.callers(request.app, request.component):
            _log.warning("forwarded call refused", caller=peer.name, app=request.app, component=request.component)
            raise PermissionDenied(
                f"node {peer.name} is not linked to {request.app}/{request.component} on node "
                f"{self.agent.config.name}; only nodes whose components import it may call it",
                caller=peer.name,
                app=request.app,
                component=request.component,
            )
        template = self.agent.pool(request.app, request.component).template
        ref = FunctionRef(request.interface, request.function)
        signature = template.signature(ref)
        args = signature.args_from_proto(list(request.args))
        result = self._run(request.app, request.component, ref, args, context)
        encoded = signature.result_to_proto(result)
        return dataplane_pb2.CallResponse(result=encoded) if encoded is not None else dataplane_pb2.CallResponse()

    @edge
    def Invoke(self, request: dataplane_pb2.InvokeRequest, context: SyncContext) -> dataplane_pb2.InvokeResponse:
        template = self.agent.pool(request.app, request.component).template
        ref = template.resolve(request.function)
        signature = template.signature(ref)
        docs = loads_json(request.args_json or "[]", "args_json")
        if not isinstance(docs, list):
            raise InvalidArgument(
                f"args_json must be a JSON list of arguments, got {type(docs).__name__}", field="args_json"
            )
        args = signature.args_from_json(docs)
        result = self._run(request.app, request.component, ref, args, context)
        return dataplane_pb2.InvokeResponse(
            result_json=json.dumps(signature.result_to_json(result)), node=self.agent.config.name
        )

    @edge
    def Logs(self, request: dataplane_pb2.LogsRequest, context: SyncContext) -> Iterator[dataplane_pb2.LogLine]:
        key = (request.app, request.component)
        if request.tail < 0:
            raise InvalidArgument("tail must be >= 0", field="tail")
        node = self.agent.config.name
        if not request.follow:
            for line in self.agent.logs.tail(key, request.tail):
                yield _line(line, node, request.component)
            return
        with self.agent.follow_slot(key):
            follower = self.agent.logs.follow(key, request.tail)
            if not context.add_callback(follower.close):  # the reader went away: stop waiting for lines
                follower.close()
            for line in follower:
                yield _line(line, node, request.component)

    def _run(self, app: str, component: str, ref: FunctionRef, args: list[Any], context: SyncContext) -> Any:
        """Run the call in this (grpc) thread, within the caller's deadline."""
        remaining = context.time_remaining()
        set_call_deadline(time.monotonic() + remaining if remaining is not None else None)
        try:
            return self.agent.call(app, component, ref, args)
        finally:
            set_call_deadline(None)


def _line(line: Line, node: str, component: str) -> dataplane_pb2.LogLine:
    return dataplane_pb2.LogLine(time=line.time, stream=line.stream, text=line.text, node=node, component=component)
