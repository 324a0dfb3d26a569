"""gRPC helpers shared by the servers and clients: error mapping at the edge,
server construction, channel options."""

from __future__ import annotations

import functools
import inspect
import re
import threading
from typing import Any, Awaitable, Callable, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from neon.errors import ERROR_METADATA_KEY, InvalidArgument, NeonGridError
from neon.observe import log
from neon.rpc import inline
from neon.security import authz
from neon.security.tls import Credentials, Peer, ServerIdentity, peer_of, sync_peer
from neon.threads import started_pool

_log = log.get("neon.rpc.servers")

MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]

# gRPC's core holds calls the asyncio server has not yet taken up to 1,000 of them, and past that cancels the
# new ones (the client sees CANCELLED, with no reason): thousands of agents heartbeating into a control plane
# whose event loop is busy for a moment (a reconcile pass over every node) lost hundreds of heartbeats so.
# A call waits instead, within its own deadline, which the caller chose.
_PENDING = [("grpc.server.max_pending_requests", 100_000), ("grpc.server.max_pending_requests_hard_limit", 100_000)]

_IPV4_PORT = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")


def channel_target(addresses: str) -> str:
    """A gRPC target for ``host:port`` or several replicas' ``ip:port,ip:port``.

    Several addresses become one ``ipv4:`` target: the channel connects to the
    first that answers and moves on when it fails. Names that resolve to every
    replica (a DNS name, a Kubernetes Service) need no list at all.
    """
    parts = [a.strip() for a in addresses.split(",") if a.strip()]
    if len(parts) <= 1:
        return parts[0] if parts else addresses
    bad = [p for p in parts if not (_IPV4_PORT.match(p) or p.startswith("localhost:"))]
    if bad:
        raise InvalidArgument(
            f"several control planes must be given as ip:port (got {', '.join(bad)}); "
            "or use one DNS name that resolves to all of them",
            field="control",
        )
    return "ipv4:" + ",".join(p.replace("localhost:", "127.0.0.1:") for p in parts)


F = TypeVar("F", bound=Callable[..., Any])
# A servicer context with any request/response types (servicers are typed by their stubs).
Context = grpc.aio.ServicerContext[Any, Any]
# The context of a synchronous server's handler (the agent's data plane: handlers run in grpc's threads).
SyncContext = grpc.ServicerContext


async def abort_with(context: Context, err: NeonGridError) -> None:
    await context.abort(err.code, err.message, trailing_metadata=((ERROR_METADATA_KEY, err.to_json()),))


def abort_sync(context: SyncContext, err: NeonGridError) -> None:
    """Raise out of a synchronous handler with ``err``'s status and details."""
    context.set_trailing_metadata(((ERROR_METADATA_KEY, err.to_json()),))
    context.abort(err.code, err.message)


def edge(method: F) -> F:
    """Wrap a servicer method at the gRPC edge.

    Names the RPC and the request's ids (app, component, node, caller) in every
    log line written while it is served (:class:`neon.observe.log.serving`), and turns
    a NeonGridError into its gRPC status with details. Works for unary and
    server-streaming methods, of asyncio servers (coroutines, async generators)
    and of synchronous ones.
    """
    name = method.__name__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self: Any, request: Any, context: Context) -> Any:
            with log.serving(name, request):
                try:
                    async for item in method(self, request, context):
                        yield item
                except NeonGridError as err:
                    await abort_with(context, err)

        return stream_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def sync_stream_wrapper(self: Any, request: Any, context: SyncContext) -> Any:
            with log.serving(name, request):
                try:
                    yield from method(self, request, context)
                except NeonGridError as err:
                    abort_sync(context, err)

        return sync_stream_wrapper  # type: ignore[return-value]

    if not inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        def sync_wrapper(self: Any, request: Any, context: SyncContext) -> Any:
            token = log.SERVING.set((name, request))  # log.serving, inline: on every forwarded call's path
            try:
                return method(self, request, context)
            except NeonGridError as err:
                abort_sync(context, err)
            finally:
                log.SERVING.reset(token)

        return sync_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Context) -> Any:
        with log.serving(name, request):
            try:
                return await method(self, request, context)
            except NeonGridError as err:
                await abort_with(context, err)

    return wrapper  # type: ignore[return-value]


class _Undecodable:
    """What a request that is not a valid message decodes to, so the handler can refuse it clearly."""

    def __init__(self, why: str) -> None:
        self.why = why


def _lenient(handler: Any, method: str) -> dict[str, Any]:
    """The handler's (de)serializers, decoding a request that is not a valid message to :class:`_Undecodable`."""
    decode = handler.request_deserializer

    def lenient(raw: bytes) -> Any:
        try:
            return decode(raw)
        except Exception as err:  # noqa: BLE001 - protobuf raises DecodeError, and others for odd input
            return _Undecodable(f"{method}: the request is not a valid message ({err})")

    return {"request_deserializer": lenient, "response_serializer": handler.response_serializer}


def _refusal(method: str, request: Any, context: Any, peer: Peer | None = None) -> NeonGridError | None:
    """Why the call guard refuses this call (None: admitted); ``peer``: the caller, if already read."""
    if isinstance(request, _Undecodable):
        return InvalidArgument(request.why, field="request")
    try:
        authz.check(method, peer or peer_of(context), request)
    except NeonGridError as err:
        _log.warning("call refused", method=method, peer=context.peer(), reason=err.message)
        return err
    return None


class _Wrapped:
    """The guard's wrapper of each method's handler, made once per method instead of on every call."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[Any, Any]] = {}  # only methods the server serves: bounded

    def get(self, method: str, handler: Any, wrap: Callable[[str, Any], Any]) -> Any:
        made = self._made.get(method)
        if made is None or made[0] is not handler:
            made = self._made[method] = (handler, wrap(method, handler))
        return made[1]


class _Guard(grpc.aio.ServerInterceptor):
    """Runs before every handler: refuses a caller the authorisation policy does not allow
    (:mod:`neon.security.authz`), and answers a request that is not a valid protobuf message (bad UTF-8,
    random bytes) with INVALID_ARGUMENT naming the method instead of grpc's UNKNOWN."""

    def __init__(self) -> None:
        self._wrapped = _Wrapped()

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return self._wrapped.get(details.method, handler, self._wrap)

    @staticmethod
    def _wrap(method: str, handler: Any) -> Any:

        async def admit(request: Any, context: Context) -> None:
            refused = _refusal(method, request, context)
            if refused is not None:
                await abort_with(context, refused)

        async def checked(requests: Any) -> Any:
            async for request in requests:
                if isinstance(request, _Undecodable):
                    raise InvalidArgument(request.why, field="request")
                yield request

        options = _lenient(handler, method)
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                await admit(request, context)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **options)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> Any:
                await admit(request, context)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(unary_stream, **options)
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: Context) -> Any:
                await admit(None, context)
                return await inner_su(checked(requests), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **options)
        inner_ss = handler.stream_stream

        async def stream_stream(requests: Any, context: Context) -> Any:
            await admit(None, context)
            async for item in inner_ss(checked(requests), context):
                yield item

        return grpc.stream_stream_rpc_method_handler(stream_stream, **options)


class GuardedServer:
    """What a synchronous server's servicers register on (the agent's data plane): each method's
    handler is wrapped with the call guard once, as it is added, so no interceptor runs on every
    call. The checks are :class:`_Guard`'s, run in the handler's own thread. Its services are unary,
    server-streaming and streaming both ways; unary methods may be served inline (:mod:`neon.rpc.inline`)."""

    def __init__(self, server: grpc.Server, inline_methods: inline.InlineMethods | None) -> None:
        self._server = server
        self._inline = inline_methods
        self._wrapped = _Wrapped()

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedHandlers(h, self._wrapped) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        guarded = {name: self._guarded(service, name, h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, guarded)

    def add_inline_method_handlers(
        self, service: str, handlers: dict[str, Any], quick: dict[str, Callable[[Any], bool]]
    ) -> None:
        """Serve these unary methods inline where this grpcio allows (``quick[name](request)``: whether
        a call runs in the polling thread), as registered methods otherwise."""
        if self._inline is None:
            self.add_registered_method_handlers(service, handlers)
            return
        for name, handler in handlers.items():
            self._inline.add(f"/{service}/{name}", self._guarded(service, name, handler), quick[name])

    def _guarded(self, service: str, name: str, handler: Any) -> Any:
        return self._wrapped.get(f"/{service}/{name}", handler, _guard_sync)


class SyncServer:
    """A synchronous grpc server (:func:`create_sync_server`) and the methods it serves inline."""

    def __init__(self, server: grpc.Server, inline_methods: inline.InlineMethods | None) -> None:
        self.grpc_server = server
        self.inline = inline_methods

    def add_insecure_port(self, address: str) -> int:
        return self.grpc_server.add_insecure_port(address)

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return self.grpc_server.add_secure_port(address, credentials)

    def start(self) -> None:
        self.grpc_server.start()
        if self.inline is not None:
            self.inline.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Stop as :meth:`grpc.Server.stop` does; the event is set once the inline methods' calls are done too."""
        stopped = self.grpc_server.stop(grace)
        served = self.inline
        if served is None:
            return stopped
        done = threading.Event()

        def finish() -> None:
            stopped.wait()
            served.close()
            done.set()

        threading.Thread(target=finish, name="server-stop", daemon=True).start()
        return done


class _GuardedHandlers(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come wrapped with the call guard (made once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapped: _Wrapped) -> None:
        self._inner = inner
        self._wrapped = wrapped

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return self._wrapped.get(handler_call_details.method, handler, _guard_sync)


def _admit_sync(method: str, request: Any, context: SyncContext) -> None:
    """Raise out of the handler with the reason the call guard refuses this call, if it does."""
    refused = _refusal(method, request, context, sync_peer(context))
    if refused is not None:
        abort_sync(context, refused)


def _guard_sync(method: str, handler: Any) -> Any:
    """``handler`` behind the call guard, run in the handler's own thread."""
    if handler.request_deserializer is None:
        return handler
    options = _lenient(handler, method)
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        def unary_unary(request: Any, context: SyncContext) -> Any:
            _admit_sync(method, request, context)
            return inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **options)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: SyncContext) -> Any:
            _admit_sync(method, request, context)
            yield from inner_us(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **options)
    if handler.stream_stream:
        inner_ss = handler.stream_stream

        def stream_stream(requests: Any, context: SyncContext) -> Any:
            _admit_sync(method, None, context)
            yield from inner_ss(_checked_sync(requests), context)

        return grpc.stream_stream_rpc_method_handler(stream_stream, **options)
    raise TypeError(f"{method}: the synchronous call guard serves unary requests and streams both ways only")


def _checked_sync(requests: Any) -> Any:
    """A request stream whose undecodable message ends it with the reason (the handler reads it as broken)."""
    for request in requests:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(request.why, field="request")
        yield request


def create_server(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: list[str],
    creds: Credentials,
    identity: ServerIdentity | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Build an asyncio gRPC server with the standard health service and the call guard.

    Args:
        address: ``host:port``; port 0 picks a free one.
        register: Adds the servicers to the server.
        service_names: Full service names reported as SERVING by the health service.
        creds: The server's identity; the port requires client certificates from the same CA
            (plaintext only when ``creds.plaintext``).
        identity: Present this (replaceable) certificate instead of ``creds``'.

    Returns:
        ``(server, bound_port)``; call ``await server.start()``.
    """
    server = grpc.aio.server(options=CHANNEL_OPTIONS + _PENDING, interceptors=[_Guard()])
    register(server)
    checker = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    return server, _finish(server, checker, address, service_names, creds, identity)


def create_sync_server(
    address: str,
    register: Callable[[GuardedServer], None],
    service_names: list[str],
    creds: Credentials,
    identity: ServerIdentity | None = None,
    threads: int = 32,
) -> tuple[SyncServer, int]:
    """Like :func:`create_server`, but synchronous: each call's handler runs in one of ``threads``
    grpc threads, with no hop to an event loop and back, or in the thread that received it
    (methods registered with ``add_inline_method_handlers``, :mod:`neon.rpc.inline`). For servers
    whose handlers block (the agent's data plane runs guest code); call ``server.start()``."""
    pool = started_pool(threads, "grpc-handler")  # started whole: see neon.threads
    server = grpc.server(pool, options=CHANNEL_OPTIONS)
    served = SyncServer(server, inline.attach(server, pool))
    guarded = GuardedServer(server, served.inline)
    register(guarded)
    return served, _finish(served, health.HealthServicer(), address, service_names, creds, identity, guarded)


def _finish(
    server: Any,
    checker: Any,
    address: str,
    service_names: list[str],
    creds: Credentials,
    identity: ServerIdentity | None,
    registrar: Any = None,
) -> int:
    """Add the health service (through ``registrar``, if given) and the listening port; returns the bound port."""
    health_pb2_grpc.add_HealthServicer_to_server(checker, registrar or server)
    if identity is not None and not creds.plaintext:
        port = int(server.add_secure_port(address, identity.server()))
    else:
        port = _add_port(server, address, creds, require_client_cert=True)
    server._neon_health = checker
    server._neon_services = ["", *service_names]
    return port


def _add_port(
    server: grpc.aio.Server | grpc.Server, address: str, creds: Credentials, require_client_cert: bool
) -> int:
    try:
        if creds.plaintext:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, creds.server(require_client_cert))
    except RuntimeError as err:  # grpc raises RuntimeError when it cannot bind
        raise OSError(f"cannot listen on {address}: {err}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def add_join_port(server: grpc.aio.Server, address: str, creds: Credentials) -> int:
    """A second TLS port that asks for no client certificate, for agents that join with a token.

    The call guard admits only ``Join`` and health checks there; every other RPC needs a certificate.
    """
    return _add_port(server, address, creds, require_client_cert=False)


async def mark_serving(server: grpc.aio.Server | grpc.Server | SyncServer) -> None:
    """Report every registered service as SERVING on the health service."""
    checker = getattr(server, "_neon_health")  # noqa: B009 - set by _finish, not declared by grpc
    for name in getattr(server, "_neon_services"):  # noqa: B009
        result = checker.set(name, health_pb2.HealthCheckResponse.SERVING)
        if isinstance(result, Awaitable):
            await result
