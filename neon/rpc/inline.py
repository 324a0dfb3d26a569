"""Unary methods of a synchronous gRPC server answered in the thread that polls for them.

grpcio's synchronous server hands every call to a worker thread, which then
asks for the request and waits while the polling thread receives it, and
answers: two wake-ups of another thread for each call, tens of microseconds
each on an idle vCPU. For the agent's data plane, where a forwarded call's
whole guest work is a few tens of microseconds, that is most of what it adds
beyond the network (bench/README.md, hot path 8: a loopback echo one call at
a time, 0.45 ms through grpcio's server, 0.31-0.33 ms served here).

:class:`InlineMethods` serves chosen methods of the same core server (same
port, same TLS) on a completion queue of its own. Its poller receives a call's
request and, when the method's ``inline`` test says the call is quick, runs
the handler right there and answers; any other call goes to a worker thread
at once (one wake-up instead of two). The handlers are grpc's own
:class:`grpc.RpcMethodHandler` s and get a context with the parts of
:class:`grpc.ServicerContext` a unary handler uses.

A call judged quick can still run long (a guest stuck until its timeout). So
that it never holds the others back, a watcher starts another poller when an
inline call has run :data:`RESCUE_AFTER` while nobody polls; a poller that
finds another one polling when it is done goes away again (:class:`Crew`).

This reaches into grpcio's Cython layer (``grpc._cython.cygrpc``, the
server's ``_cy_server``), stable since grpcio 1.63; :func:`attach` returns
None when they are missing, and the server then serves every method itself.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import grpc

from neon.observe import log

try:
    from grpc._cython import cygrpc
except ImportError:  # pragma: no cover - grpcio always ships it today
    cygrpc = None

_log = log.get("neon.rpc.inline")

RESCUE_AFTER = 0.005  # seconds an inline call may hold the only poller before another starts
MOST_POLLERS = 16  # pollers at once, each rescued from an inline call that ran long
PENDING = 8  # calls asked of the core server ahead, per method
_POLL_PERIOD = 5.0  # seconds; how often an idle poller looks whether the queue is closing
_FLAGS = 0
_OK = grpc.StatusCode.OK


@dataclass
class Crew:
    """Who polls the queue, and who runs an inline call: the decisions, without the threads.

    Events in (:meth:`polling`, :meth:`polled`, :meth:`began`, :meth:`ended`), answers out
    (:meth:`may_leave`, :meth:`rescue`); the caller holds one lock around them all.
    """

    most: int = MOST_POLLERS
    threads: int = 0  # poller threads alive
    waiting: int = 0  # of them, waiting in the queue's poll
    running: dict[int, float] = field(default_factory=dict)  # poller -> when its inline call began
    begun: int = 0  # inline calls begun, ever

    def joined(self) -> None:
        self.threads += 1

    def polling(self) -> None:
        self.waiting += 1

    def polled(self) -> None:
        self.waiting -= 1

    def began(self, poller: int, now: float) -> None:
        self.running[poller] = now
        self.begun += 1

    def ended(self, poller: int) -> None:
        self.running.pop(poller, None)

    def may_leave(self) -> bool:
        """After an event: this poller goes, since another polls (one always stays)."""
        if self.waiting > 0 and self.threads > 1:
            self.threads -= 1
            return True
        return False

    def rescue(self, now: float, after: float) -> bool:
        """Whether to start another poller now: nobody polls, and an inline call has run ``after`` seconds."""
        if self.waiting > 0 or self.threads >= self.most or not self.running:
            return False
        if min(self.running.values()) > now - after:
            return False
        self.threads += 1
        return True


class _Aborted(Exception):
    """Raised by :meth:`_Context.abort`: the handler ends with the status it set."""


class _Context:
    """What a unary handler asks of its :class:`grpc.ServicerContext`, for a call served here."""

    __slots__ = ("_rpc_event", "_neon_peer", "code", "details", "trailing_metadata")

    def __init__(self, rpc_event: Any) -> None:
        self._rpc_event = rpc_event  # read by neon.security.tls for the peer's certificate, as grpc's context is
        self._neon_peer: Any = None
        self.code = grpc.StatusCode.OK
        self.details = ""
        self.trailing_metadata: Sequence[tuple[str, Any]] = ()

    def time_remaining(self) -> float:
        return max(float(self._rpc_event.call_details.deadline) - time.time(), 0.0)

    def invocation_metadata(self) -> Any:
        return self._rpc_event.invocation_metadata

    def peer(self) -> str:
        return str(self._rpc_event.call.peer().decode("utf-8", "replace"))

    def auth_context(self) -> dict[str, Any]:
        properties = cygrpc.auth_context(self._rpc_event.call) or {}
        return {key.decode(): value for key, value in properties.items()}

    def is_active(self) -> bool:
        return True  # a unary call here is not told of a cancel before it answers

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, Any]]) -> None:
        self.trailing_metadata = tuple(trailing_metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        if code == grpc.StatusCode.OK:  # as grpc does: aborting with OK fails the call
            code, details = grpc.StatusCode.UNKNOWN, ""
        self.code, self.details = code, details
        raise _Aborted()


@dataclass(frozen=True)
class _Method:
    name: str
    handler: grpc.RpcMethodHandler[Any, Any]
    inline: Callable[[Any], bool]  # is this request quick enough to run in the poller?


class InlineMethods:
    """Unary methods served off a grpcio server's own machinery (see the module's docstring).

    Register them (:meth:`add`) before the server starts, :meth:`start` after it has, and
    :meth:`close` after it has stopped.
    """

    def __init__(self, core_server: Any, workers: futures.Executor) -> None:
        self._core = core_server
        self._workers = workers
        self._queue = cygrpc.CompletionQueue()
        core_server.register_completion_queue(self._queue)
        self._methods: dict[str, _Method] = {}
        self._lock = threading.Lock()
        self._crew = Crew()
        self._inflight = 0  # calls asked for or being answered: the queue closes when none is left
        self._stopping = False
        self._closed = False
        self._calls = threading.Event()  # set while inline calls run; the watcher sleeps on it
        self._counts: dict[str, list[int]] = {}  # method -> [calls run in a poller, calls handed to a worker]

    def add(self, method: str, handler: grpc.RpcMethodHandler[Any, Any], inline: Callable[[Any], bool]) -> None:
        """Serve ``method`` (``/package.Service/Method``, unary-unary) here; ``inline(request)`` says
        whether a call runs in the poller (it must be quick) or goes to a worker thread."""
        if handler.unary_unary is None:
            raise TypeError(f"{method}: only unary methods are served inline")
        self._core.register_method(method)
        self._methods[method] = _Method(method, handler, inline)
        self._counts[method] = [0, 0]

    def served(self) -> dict[tuple[str, str], int]:
        """Calls answered so far, by (method, thread): ``poller`` (inline) or ``worker``."""
        with self._lock:
            return {
                (method, thread): count
                for method, counts in self._counts.items()
                for thread, count in zip(("poller", "worker"), counts, strict=True)
            }

    def start(self) -> None:
        for method in self._methods:
            for _ in range(PENDING):
                self._ask(method)
        with self._lock:
            self._crew.joined()
        self._spawn_poller()
        threading.Thread(target=self._watch, name="inline-watch", daemon=True).start()

    def close(self) -> None:
        """The server has stopped: close the queue once no call is left in it, and let the pollers go."""
        with self._lock:
            self._stopping = True
            self._close_if_done()
        self._calls.set()  # the watcher leaves (it no longer rescues anyone)

    # ------------------------------------------------------------- polling --

    def _ask(self, method: str) -> None:
        """Ask the core server for the next call of ``method`` (with the lock held or before start)."""
        self._inflight += 1
        self._core.request_registered_call(self._queue, self._queue, method, method)

    def _spawn_poller(self) -> None:
        """A thread polling the queue (the crew has counted it already)."""
        threading.Thread(target=self._poll, name="inline-poller", daemon=True).start()

    def _poll(self) -> None:
        me = threading.get_ident()
        queue, lock, crew = self._queue, self._lock, self._crew
        shutdown, timeout = cygrpc.CompletionType.queue_shutdown, cygrpc.CompletionType.queue_timeout
        while True:
            with lock:
                crew.polling()
            event = queue.poll(time.time() + _POLL_PERIOD)
            with lock:
                crew.polled()
            kind = event.completion_type
            if kind == shutdown:
                return
            if kind == timeout:
                continue
            try:
                self._handle(event, me)
            except Exception:  # noqa: BLE001 - a bug here must not stop the data plane
                _log.exception("inline call handling failed", tag=repr(event.tag))
            with lock:
                if crew.may_leave():
                    return

    def _handle(self, event: Any, me: int) -> None:
        tag = event.tag
        if type(tag) is str:  # a call of that method arrived (or the server is shutting down)
            with self._lock:
                self._inflight -= 1
                if not event.success:  # the server shuts down (stopped, or dropped without a stop)
                    self._stopping = True
                    self._close_if_done()
                    return
                self._inflight += 1  # this call, until its answer is sent
                if not self._stopping:
                    self._ask(tag)
            event.call.start_server_batch((cygrpc.ReceiveMessageOperation(_FLAGS),), (self._methods[tag], event))
        elif tag is None:  # an answer was sent
            with self._lock:
                self._inflight -= 1
                self._close_if_done()
        else:  # a call's request arrived
            method, call_event = tag
            self._received(method, call_event, event.batch_operations[0].message(), me)

    def _received(self, method: _Method, call_event: Any, raw: bytes | None, me: int) -> None:
        if raw is None:  # the caller closed or cancelled before sending its request
            self._answer(call_event, grpc.StatusCode.UNIMPLEMENTED, f"{method.name} requires one request")
            return
        handler = method.handler
        try:
            request = handler.request_deserializer(raw) if handler.request_deserializer is not None else raw
        except Exception:  # noqa: BLE001 - as grpc answers a request its deserializer refuses
            self._answer(call_event, grpc.StatusCode.INTERNAL, "Exception deserializing request!")
            return
        try:
            quick = method.inline(request)
        except Exception:  # noqa: BLE001 - a test that fails says "not quick"
            quick = False
        if not quick:
            with self._lock:
                self._counts[method.name][1] += 1
            self._workers.submit(self._serve, method, call_event, request)
            return
        with self._lock:
            self._counts[method.name][0] += 1
            self._crew.began(me, time.monotonic())
        if not self._calls.is_set():
            self._calls.set()
        try:
            self._serve(method, call_event, request)
        finally:
            with self._lock:
                self._crew.ended(me)

    def _serve(self, method: _Method, call_event: Any, request: Any) -> None:
        """Run the handler and send its answer (in the poller or a worker thread)."""
        handler = method.handler
        context = _Context(call_event)
        try:
            response = handler.unary_unary(request, context)  # type: ignore[misc, arg-type]
            payload = handler.response_serializer(response) if handler.response_serializer is not None else response
        except _Aborted:
            self._answer(call_event, context.code, context.details, context.trailing_metadata)
            return
        except Exception as err:  # noqa: BLE001 - as grpc does: the caller gets UNKNOWN, the log the trace
            _log.exception("inline handler failed", method=method.name)
            self._answer(call_event, grpc.StatusCode.UNKNOWN, f"Exception calling application: {err}")
            return
        # OK with the response; after set_code without an abort, that status alone (no client reads a message with it)
        self._answer(call_event, context.code, context.details, context.trailing_metadata, payload)

    def _answer(
        self,
        call_event: Any,
        code: grpc.StatusCode,
        details: str,
        trailing: Sequence[tuple[str, Any]] = (),
        payload: bytes | None = None,
    ) -> None:
        """Send the call's status (with ``payload`` when it is OK) and end it; its completion has no tag."""
        message = [cygrpc.SendMessageOperation(payload, _FLAGS)] if payload is not None and code == _OK else []
        call_event.call.start_server_batch(
            (
                cygrpc.SendInitialMetadataOperation((), _FLAGS),
                *message,
                cygrpc.SendStatusFromServerOperation(tuple(trailing), code.value[0], details.encode(), _FLAGS),
                cygrpc.ReceiveCloseOnServerOperation(_FLAGS),
            ),
            None,
        )

    def _close_if_done(self) -> None:
        """Close the queue (lock held) once stopping and nothing is asked for or being answered."""
        if self._stopping and self._inflight == 0 and not self._closed:
            self._closed = True
            self._queue.shutdown()
            self._calls.set()  # the watcher looks once more and leaves

    # ------------------------------------------------------------ watching --

    def _watch(self) -> None:
        """Start another poller when an inline call holds the only one; sleep while no call runs inline."""
        seen = -1
        while True:
            self._calls.wait()
            time.sleep(RESCUE_AFTER)
            with self._lock:
                if self._closed or self._stopping:
                    return
                rescue = self._crew.rescue(time.monotonic(), RESCUE_AFTER)
                if self._crew.begun == seen and not self._crew.running:
                    self._calls.clear()  # nothing ran inline since the last look: wait for the next
                seen = self._crew.begun
            if rescue:
                _log.debug("an inline call runs long: another poller starts")
                self._spawn_poller()


def attach(server: grpc.Server, workers: futures.Executor) -> InlineMethods | None:
    """Methods served inline on ``server`` (a :func:`grpc.server`, not yet started), or None when
    this grpcio does not have the parts it needs (the server then serves every method itself)."""
    core = getattr(server, "_cy_server", None)
    needed = ("register_completion_queue", "register_method", "request_registered_call")
    if cygrpc is None or core is None or not all(hasattr(core, name) for name in needed):
        _log.warning("this grpcio cannot serve methods inline; forwarded calls take grpc's worker threads")
        return None
    return InlineMethods(core, workers)
