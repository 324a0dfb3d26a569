"""The agent's DataPlane service: calls into the components it runs.

It is served by a synchronous gRPC server (:func:`neon.rpc.servers.create_sync_server`),
``Call`` and ``CallBatch`` through :mod:`neon.rpc.inline`: a call to a function
whose component answers quickly (:meth:`DataPlaneServicer.quick`) runs the
guest in the very thread that received it, any other call in a worker thread,
so a forwarded call costs no hop to an event loop and back, nor grpc's hop to
a worker and its wait for the request (bench/forwarding.py measures both).
``CallBatch`` serves the calls a forwarder coalesced while others to this node
were in flight (:mod:`agent.dataplane.lane`), each with its own deadline and outcome.

Both answer with messages already serialized: a forwarded call's result goes
from wasmtime's C value straight to the wire (:func:`agent.values.encodergen.encoder`),
framed into the reply by :mod:`agent.dataplane.frames`, with no message objects made on
the way. :meth:`DataPlaneServicer.add_to_server` registers them so.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Sequence
from typing import Any, Callable, Iterator, NamedTuple

import grpc

from agent.dataplane import frames
from agent.dataplane.forwarder import set_call_deadline
from agent.dataplane.serving import Serving
from agent.observe.logbook import Line
from agent.runtime.engine import FunctionRef
from agent.runtime.pool import InstancePool
from neon._proto import calls_pb2, dataplane_pb2
from neon._proto.values_pb2 import Value
from neon._validate import loads_json
from neon.errors import CallFailed, DeadlineExceeded, InvalidArgument, NeonGridError, NotRunning, PermissionDenied
from neon.observe import log
from neon.rpc.servers import GuardedServer, SyncContext, edge
from neon.security.tls import peer_of
from neon.threads import started_pool

_log = log.get("neon.agent.dataplane")

# A call to a component whose calls typically take less than this (seconds) runs in the thread that
# received it; a batch's calls to a component with several instances run side by side when its calls
# take longer, quicker ones in turn: for those a hop to another thread costs more than it saves.
QUICK_BELOW = 0.001


class DataPlaneServicer:
    """The ``neon.v1.DataPlane`` service (registered by :meth:`add_to_server`)."""

    def __init__(self, node: Serving, helpers: int = 16) -> None:
        self.node = node
        # (app, component, interface, function) -> what serving it takes, while node.serving stays the same.
        self._routes: dict[tuple[str, str, str, str], _Route] = {}
        self._routes_serving = -1
        # Threads that run a batch's calls beside its handler thread, for components with several instances.
        self._helpers = started_pool(helpers, "batch")
        # Serves an HTTP request handed over by another node's front door (set by the agent's front door).
        self.serve_http: Callable[[Iterator[dataplane_pb2.HttpFrame]], Iterator[dataplane_pb2.HttpFrame]] | None = None

    def close(self) -> None:
        self._helpers.shutdown(wait=False, cancel_futures=True)

    def add_to_server(self, server: GuardedServer) -> None:
        """Register the service on ``server``: ``Call``, ``CallBatch`` and ``Invoke`` answer serialized
        messages (no response serializer) and are served inline where the server can (:mod:`neon.rpc.inline`:
        a quick call runs in the thread that received it, :meth:`quick`), the others as the
        generated code would register them."""
        pb = dataplane_pb2
        forwarded: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "Call": grpc.unary_unary_rpc_method_handler(self.Call, request_deserializer=pb.CallRequest.FromString),
            "CallBatch": grpc.unary_unary_rpc_method_handler(
                self.CallBatch, request_deserializer=pb.CallBatchRequest.FromString
            ),
            "Invoke": grpc.unary_unary_rpc_method_handler(
                self._invoke_serialized, request_deserializer=calls_pb2.InvokeRequest.FromString
            ),
        }
        others: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "Logs": grpc.unary_stream_rpc_method_handler(
                self.Logs, calls_pb2.LogsRequest.FromString, calls_pb2.LogLine.SerializeToString
            ),
            "ServeHttp": grpc.stream_stream_rpc_method_handler(
                self.ServeHttp, pb.HttpFrame.FromString, pb.HttpFrame.SerializeToString
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(frames.SERVICE, forwarded | others),))
        server.add_registered_method_handlers(frames.SERVICE, others)
        quick: dict[str, Callable[[Any], bool]] = {
            "Call": self.quick,
            "CallBatch": _batched,
            "Invoke": self.quick_invoke,
        }
        server.add_inline_method_handlers(frames.SERVICE, forwarded, quick)

    def quick(self, request: Any) -> bool:
        """Whether a ``Call`` may run in the thread that received it: its function was served
        here before, in what this node serves now; its component's calls take under
        :data:`QUICK_BELOW` (a component whose calls wait for others, forwarded on, takes longer);
        and an idle instance is there now (no wait behind a batch, no instance to make)."""
        route = self._kept(request)
        return route is not None and _quick(route.pool)

    def quick_invoke(self, request: calls_pb2.InvokeRequest) -> bool:
        """Whether a user's ``Invoke`` (relayed by the control plane) may run in the thread that received it:
        as :meth:`quick`, judged by its component's calls."""
        try:
            pool = self.node.pool(request.app, request.component)
        except NeonGridError:
            return False  # answered (NotRunning) by a worker
        return _quick(pool)

    def _kept(self, request: dataplane_pb2.CallRequest) -> _Route | None:
        """What serving ``request``'s function takes, as kept since its first call, unless what
        this node serves has changed since (then it is looked up again, :meth:`_route`)."""
        route = self._routes.get((request.app, request.component, request.interface, request.function))
        return route if route is not None and route.serving == self.node.serving else None

    @edge
    def Call(self, request: dataplane_pb2.CallRequest, context: SyncContext) -> bytes:
        """A serialized ``CallResponse``."""
        peer = peer_of(context)
        result = self._serve_call(request, peer.name if peer.authenticated else None, _deadline(context))
        return frames.call_response(result)

    @edge
    def CallBatch(self, request: dataplane_pb2.CallBatchRequest, context: SyncContext) -> bytes:
        """Run each call within its own deadline; one call's failure is its own outcome.

        The calls run in turn in this thread, unless their component has several instances and
        its calls take long enough (:data:`QUICK_BELOW`) to gain more from running side by side
        than a hop to another thread costs: then they spread over as many threads as it has instances.
        """
        peer = peer_of(context)
        caller = peer.name if peer.authenticated else None
        received = time.monotonic()
        limit = _deadline(context)
        calls = list(request.calls)
        outcomes = [b""] * len(calls)  # serialized CallOutcomes, each replaced by its call's own

        def run(indices: range) -> None:
            for i in indices:
                outcomes[i] = self._outcome(calls[i], caller, received, limit)

        width = min(len(calls), self._width(calls))
        helping = [
            self._helpers.submit(contextvars.copy_context().run, run, range(k, len(calls), width))
            for k in range(1, width)
        ]
        run(range(0, len(calls), width))
        for helper in helping:
            helper.result()
        return frames.batch_response(outcomes)

    def _width(self, calls: list[dataplane_pb2.BatchedCall]) -> int:
        """How many of these calls run at once: the most instances of any of their slow components."""
        width = 1
        for app, component in {(c.call.app, c.call.component) for c in calls}:
            with contextlib.suppress(NeonGridError):  # not running here: its calls fail on their own
                pool = self.node.pool(app, component)
                if pool.typical_call >= QUICK_BELOW:
                    width = max(width, pool.settings.instances)
        return width

    def _outcome(
        self, item: dataplane_pb2.BatchedCall, caller: str | None, received: float, limit: float | None
    ) -> bytes:
        """The serialized ``CallOutcome`` of one batched call."""
        call = item.call
        deadline = received + item.timeout if item.timeout > 0 else limit
        if deadline is not None and limit is not None:
            deadline = min(deadline, limit)
        try:
            if caller is not None and call.caller and call.caller != caller:
                raise PermissionDenied(
                    f"node {caller} may not act as node {call.caller!r} in a batched call",
                    caller=caller,
                    app=call.app,
                    component=call.component,
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"{call.app}/{call.component} {call.function}: the caller's deadline passed while the call "
                    "waited behind the others in its batch",
                    app=call.app,
                    component=call.component,
                )
            result = self._serve_call(call, caller, deadline)
        except NeonGridError as err:
            return _failed(err)
        except Exception as err:  # noqa: BLE001 - a bug in serving one call must not fail the others
            _log.exception("batched call failed", app=call.app, component=call.component, function=call.function)
            return _failed(CallFailed(f"node {self.node.name} failed serving {call.function}: {err!r}"))
        return frames.succeeded(result)

    def _serve_call(
        self, request: dataplane_pb2.CallRequest, caller: str | None, deadline: float | None
    ) -> bytes | None:
        """One forwarded call from node ``caller`` (None: a plaintext cluster, nobody to check),
        run in this (grpc) thread within ``deadline``; returns the result as a serialized ``Value``."""
        route = self._kept(request)
        callers = route.callers if route is not None else self.node.callers(request.app, request.component)
        if caller is not None and caller not in callers:  # before anything is said of the component
            _log.warning("forwarded call refused", caller=caller, app=request.app, component=request.component)
            raise PermissionDenied(
                f"node {caller} is not linked to {request.app}/{request.component} on node "
                f"{self.node.name}; only nodes whose components import it may call it",
                caller=caller,
                app=request.app,
                component=request.component,
            )
        if route is None:
            route = self._route(request)
        args = route.decode(request.args)
        return self._run(route.app, route.component, route.ref, args, deadline, route.lift, route.pool)  # type: ignore[no-any-return]

    def _route(self, request: dataplane_pb2.CallRequest) -> _Route:
        """Look up what serving ``request``'s function takes, and keep it until what this node serves changes."""
        serving = self.node.serving  # read first: a change while looking up makes the next call look again
        app, component = request.app, request.component
        ref = FunctionRef(request.interface, request.function)
        pool = self.node.pool(app, component)
        signature = pool.template.signature(ref)
        callers = self.node.callers(app, component)
        route = _Route(serving, app, component, ref, pool, callers, signature.decode_args, signature.wire_result)
        routes = self._routes if self._routes_serving == serving else {}
        routes[(app, component, ref.interface, ref.name)] = route
        self._routes, self._routes_serving = routes, serving
        return route

    @edge
    def ServeHttp(
        self, frames: Iterator[dataplane_pb2.HttpFrame], context: SyncContext
    ) -> Iterator[dataplane_pb2.HttpFrame]:
        """An HTTP request another node's front door handed over, in frames: served by this node's front door,
        the response in frames."""
        if self.serve_http is None:
            raise NotRunning(f"node {self.node.name} serves no HTTP components", node=self.node.name)
        yield from self.serve_http(frames)

    def _invoke_serialized(self, request: calls_pb2.InvokeRequest, context: SyncContext) -> bytes:
        return self.Invoke(request, context).SerializeToString()

    @edge
    def Invoke(self, request: calls_pb2.InvokeRequest, context: SyncContext) -> calls_pb2.InvokeResponse:
        template = self.node.pool(request.app, request.component).template
        ref = template.resolve(request.function)
        signature = template.signature(ref)
        typed = request.WhichOneof("arguments") == "args"  # typed values in, a typed value out
        if typed:
            args = signature.args_from_proto(request.args.values)
        else:
            docs = loads_json(request.args_json or "[]", "args_json")
            if not isinstance(docs, list):
                raise InvalidArgument(
                    f"args_json must be a JSON list of arguments, got {type(docs).__name__}", field="args_json"
                )
            args = signature.args_from_json(docs)
        result = self._run(request.app, request.component, ref, args, _deadline(context))
        if typed:
            return calls_pb2.InvokeResponse(result=signature.result_to_proto(result), node=self.node.name)
        return calls_pb2.InvokeResponse(result_json=json.dumps(signature.result_to_json(result)), node=self.node.name)

    @edge
    def Logs(self, request: calls_pb2.LogsRequest, context: SyncContext) -> Iterator[calls_pb2.LogLine]:
        key = (request.app, request.component)
        if request.tail < 0:
            raise InvalidArgument("tail must be >= 0", field="tail")
        node = self.node.name
        if not request.follow:
            for line in self.node.logs.tail(key, request.tail):
                yield _line(line, node, request.component)
            return
        with self.node.follow_slot(key):
            follower = self.node.logs.follow(key, request.tail)
            if not context.add_callback(follower.close):  # the reader went away: stop waiting for lines
                follower.close()
            for line in follower:
                yield _line(line, node, request.component)

    def _run(
        self,
        app: str,
        component: str,
        ref: FunctionRef,
        args: list[Any],
        deadline: float | None,
        lift: Callable[[Any], Any] | None = None,
        pool: InstancePool | None = None,
    ) -> Any:
        """Run the call in this (grpc) thread within ``deadline`` (monotonic; None: the component's own),
        which the calls the guest forwards meanwhile keep; ``lift`` and ``pool``: see
        :meth:`agent.dataplane.serving.Serving.call_within`."""
        set_call_deadline(deadline)
        try:
            return self.node.call_within(app, component, ref, args, deadline, lift, pool)
        finally:
            set_call_deadline(None)


class _Route(NamedTuple):
    """What serving one function of a component takes, looked up on its first call."""

    serving: int  # the agent's serving generation it was looked up in
    app: str
    component: str
    ref: FunctionRef
    pool: InstancePool
    callers: frozenset[str]  # the nodes whose forwarded calls are accepted
    decode: Callable[[Sequence[Value]], list[Any]]  # the arguments, from protobuf
    lift: Callable[[int], bytes]  # the result, from wasmtime's C value to a serialized Value


def _batched(request: Any) -> bool:
    """A batch goes to a worker thread: it may take long, and its callers' next calls queue meanwhile."""
    return False


def _deadline(context: SyncContext) -> float | None:
    """When the caller stops waiting (monotonic), if it said."""
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None


def _quick(pool: InstancePool) -> bool:
    """Whether a call to ``pool``'s component may run in the thread that received it: its calls take under
    :data:`QUICK_BELOW` and an idle instance is there now."""
    return 0.0 < pool.typical_call < QUICK_BELOW and pool.ready()


def _failed(err: NeonGridError) -> bytes:
    """A batched call's serialized outcome for ``err``: what a unary call carries in its status and trailer."""
    return dataplane_pb2.CallOutcome(
        code=err.code.value[0], message=err.message, error=err.to_json()
    ).SerializeToString()


def _line(line: Line, node: str, component: str) -> calls_pb2.LogLine:
    return calls_pb2.LogLine(time=line.time, stream=line.stream, text=line.text, node=node, component=component)
