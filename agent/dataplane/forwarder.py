"""Split links: host functions that forward an import over gRPC.

When an importer's link crosses nodes, every function of the imported
interface is defined in the importer's linker by :meth:`Router.forwarder`: it
encodes the arguments from the WIT types, calls ``DataPlane.Call`` on a node
running the exporter (round robin over the current endpoints, which the
control plane updates without restarting the importer), and decodes the result.

Guest code runs in worker threads, so forwarding uses grpc's synchronous
stubs there. The deadline is the caller's remaining time when the call came in
over the data plane, else the agent's default; no forwarded call outlives it.

A call that finds its replica down (UNAVAILABLE, or silent past its share of
the deadline) is retried on the exporter's other replicas only when the link
marks the function idempotent; each try gets an equal share of the time left
(Envoy's per-try timeout), so one silent replica cannot use up the deadline.
Any other call fails at once with UNAVAILABLE, naming the replica and why it
was not retried.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from typing import Any, Callable

import grpc

from agent.dataplane import frames
from agent.dataplane.lane import Lane
from agent.observe.telemetry import Telemetry
from agent.values import readergen
from agent.values.signature import Signature
from neon.errors import DeadlineExceeded, NeonGridError, Unavailable, from_rpc_error
from neon.observe import log
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, tls
from neon.security.tls import Credentials

_log = log.get("neon.agent.forwarder")
_deadline = threading.local()


def set_call_deadline(deadline: float | None) -> None:
    """Record, for this worker thread, when the call being served must finish (monotonic)."""
    _deadline.value = deadline


def get_call_deadline() -> float | None:
    """When the call this worker thread serves must finish, if anyone said."""
    value: float | None = getattr(_deadline, "value", None)
    return value


class Router:
    """Where each (app, component) is served from, and the channels to get there."""

    def __init__(
        self,
        node: str,
        default_timeout: float = 10.0,
        telemetry: Telemetry | None = None,
        creds: Credentials | None = None,
    ) -> None:
        """``creds`` is the node's identity; peers must hold agent certificates (plaintext when None)."""
        self.node = node
        self.creds = creds or Credentials.insecure()
        self.telemetry = telemetry or Telemetry(node)
        self.default_timeout = default_timeout
        self._routes: dict[tuple[str, str], tuple[str, ...]] = {}
        self._channels: dict[str, grpc.Channel] = {}
        self._lanes: dict[str, Lane] = {}  # address -> the calls to it, over its channel
        self._lock = threading.Lock()
        self._rr = itertools.count()

    def set_routes(self, app: str, component: str, endpoints: tuple[str, ...]) -> None:
        with self._lock:
            self._routes[(app, component)] = tuple(endpoints)
            self._close_unrouted()

    def drop_app(self, app: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == app]:
                del self._routes[key]
            self._close_unrouted()

    def _close_unrouted(self) -> None:
        """Close the channels of addresses no route names any more (the lock is held): calls still
        waiting on a replica that left are cancelled now, instead of when their deadline passes."""
        routed = {address for endpoints in self._routes.values() for address in endpoints}
        for address in [a for a in self._channels if a not in routed]:
            self._lanes.pop(address, None)
            self._channels.pop(address).close()

    def endpoints(self, app: str, component: str) -> tuple[str, ...]:
        # Read without the lock: each route is a tuple, replaced whole under it (on every call's path).
        return self._routes.get((app, component), ())

    def set_credentials(self, creds: Credentials, grace: float = 60.0) -> None:
        """Dial with new credentials from now on; channels in use close after ``grace`` seconds
        (calls on them finish; the next ones open channels with the new certificate)."""
        with self._lock:
            self.creds, old = creds, list(self._channels.values())
            self._channels, self._lanes = {}, {}
        timer = threading.Timer(grace, lambda: [c.close() for c in old])
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
            self._lanes.clear()

    def channel(self, address: str) -> grpc.Channel:
        """The channel to ``address``'s data plane with this node's credentials (opened on first use)."""
        with self._lock:
            return self._channel(address)

    def _channel(self, address: str) -> grpc.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = tls.sync_channel(address, self.creds, pki.AGENT_NAME, CHANNEL_OPTIONS)
        return channel

    def lane(self, address: str) -> Lane:
        """The calls to ``address``, over its channel (opened on first use)."""
        lane = self._lanes.get(address)
        if lane is not None:
            return lane
        with self._lock:
            lane = self._lanes.get(address)
            if lane is None:
                channel = self._channel(address)
                lane = self._lanes[address] = Lane(
                    self.node,
                    _raw_method(channel, "Call"),
                    _raw_method(channel, "CallBatch"),
                    on_batch=functools.partial(self.telemetry.batch, address),
                )
        return lane

    def forwarder(
        self,
        app: str,
        importer: str,
        exporter: str,
        interface: str,
        function: str,
        signature: Signature,
        idempotent: bool = False,
    ) -> Callable[..., Any]:
        """A host function forwarding ``interface#function`` to ``exporter``."""
        label = f"{exporter} {interface}#{function}"
        prefix = frames.request_prefix(app, exporter, interface, function, self.node)
        meter = self.telemetry.link_meter((app, importer, exporter, "remote"))
        decode = readergen.result_reader(signature)
        encode = signature.args_to_wire
        key = (app, exporter)

        def forward(*args: Any) -> Any:
            started = time.perf_counter()
            ok, sent, received = False, 0, 0
            try:
                endpoints = self._routes.get(key, ())
                if not endpoints:
                    raise Unavailable(
                        f"no node serves {app}/{exporter} for {label}; is it placed?", app=app, component=exporter
                    )
                request = frames.call_request(prefix, encode(args))
                sent = len(request)
                now = time.monotonic()
                finish = now + self.default_timeout
                deadline = get_call_deadline()
                if deadline is not None:
                    finish = min(finish, deadline)
                    if finish <= now:
                        raise DeadlineExceeded(f"deadline passed before forwarding {label}")
                if len(endpoints) == 1:  # the common case, first try: straight to the one replica
                    address = endpoints[0]
                    try:
                        result, received = self.lane(address).call(request, finish - now)
                    except (grpc.RpcError, ValueError, NeonGridError) as err:
                        result, received = retry(request, finish, (address, err, 1))
                else:
                    result, received = retry(request, finish)
                value = decode(result)
                ok = True
                return value
            finally:
                meter.record(time.perf_counter() - started, ok, sent, received)

        def retry(request: bytes, finish: float, first: _Failed | None = None) -> tuple[bytes | None, int]:
            """Send ``request`` to a replica until one answers (``first``: how the try it failed on went):
            retried on the others only if the function is idempotent, each try with an equal share of the
            time left."""
            tried: list[str] = []
            failed: list[str] = []
            attempt = first
            while True:
                if attempt is not None:
                    address, err, replicas = attempt
                    error, gone = self._classify(err, address, app, exporter)
                    tried.append(address)
                    failed.append(f"{address}: {error.message}")
                    if not gone and error.code not in _RETRYABLE:
                        raise error from None  # the function ran and failed: its error, as it is
                    if not idempotent:
                        raise self._failure(label, error, failed[-1], replicas, function) from None
                    _log.info("retrying an idempotent call on another replica", call=label, failed=failed[-1])
                # The current routes each time: a replica that replaced a lost one is tried next.
                now = self._routes.get(key, ())
                candidates = _untried(now, next(self._rr), tried)
                left = finish - time.monotonic()
                if not candidates or left <= 0:
                    break
                address = candidates[0]
                share = left / len(candidates) if idempotent else left
                try:
                    return self.lane(address).call(request, share)
                except (grpc.RpcError, ValueError, NeonGridError) as err:
                    attempt = (address, err, len(now))
            if time.monotonic() >= finish:
                raise DeadlineExceeded(f"{label}: the deadline passed after {len(failed)} tries ({'; '.join(failed)})")
            raise Unavailable(f"{label}: every replica failed ({'; '.join(failed)})")

        return forward

    def _classify(
        self, err: grpc.RpcError | ValueError | NeonGridError, address: str, app: str, exporter: str
    ) -> tuple[NeonGridError, bool]:
        """The call's error, and whether its replica left the routes while it waited."""
        gone = address not in self.endpoints(app, exporter)
        if isinstance(err, NeonGridError):  # the node's own answer (a batched call's), or a wait in the lane
            return err, False
        if isinstance(err, ValueError):  # its channel was closed just before the call started
            return Unavailable("the replica left the routes (its node was lost or the component moved)"), True
        error = from_rpc_error(err)
        if gone and error.code == grpc.StatusCode.CANCELLED:
            return Unavailable("the replica left the routes while the call waited (its node was lost)"), True
        return error, False

    @staticmethod
    def _failure(label: str, error: NeonGridError, failed: str, replicas: int, function: str) -> NeonGridError:
        """The error a call that is not retried ends with, saying where it went and why it was not retried."""
        message = f"{label} at {failed}"
        if replicas > 1:
            message += (
                f"; not retried on the other {replicas - 1} replica(s): {function} is not marked idempotent "
                "on this link (spec.links[].idempotent)"
            )
        if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(message)
        return Unavailable(message)


def _raw_method(channel: Any, name: str) -> Callable[..., bytes]:
    """``DataPlane.<name>`` on ``channel`` taking and giving serialized messages (:mod:`agent.dataplane.frames`),
    registered with the channel as the generated stub registers it."""
    method: Callable[..., bytes] = channel.unary_unary(f"/{frames.SERVICE}/{name}", _registered_method=True)
    return method


# A try that failed: the replica's address, the error, and how many replicas there were then.
_Failed = tuple[str, "grpc.RpcError | ValueError | NeonGridError", int]

# A replica that is down, or silent past the try's share of the deadline.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _untried(endpoints: tuple[str, ...], start: int, tried: list[str]) -> list[str]:
    """The endpoints not tried yet, in round-robin order from ``start`` (each once)."""
    if len(endpoints) == 1:  # the common case, on every call's path
        return [] if endpoints[0] in tried else [endpoints[0]]
    rotated = (endpoints[(start + k) % len(endpoints)] for k in range(len(endpoints)))
    return list(dict.fromkeys(a for a in rotated if a not in tried))
