"""Split links: host functions that forward an import over gRPC.

When an importer's link crosses nodes, every function of the imported
interface is defined in the importer's linker by :meth:`Router.forwarder`: it
encodes the arguments from the WIT types, calls ``DataPlane.Call`` on a node
running the exporter (round robin over the current endpoints, which the
control plane updates without restarting the importer), and decodes the result.

Guest code runs in worker threads, so forwarding uses grpc's synchronous
stubs there. The deadline is the caller's remaining time when the call came in
over the data plane, else the agent's default.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable

import grpc

from agent.codec import Signature
from agent.metrics import LinkCounter
from neon import log
from neon._proto import dataplane_pb2, dataplane_pb2_grpc
from neon.errors import DeadlineExceeded, Unavailable, from_rpc_error
from neon.rpc import CHANNEL_OPTIONS

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

    def __init__(self, node: str, default_timeout: float = 10.0, counter: LinkCounter | None = None) -> None:
        self.node = node
        self.counter = counter or LinkCounter()
        self.default_timeout = default_timeout
        self._routes: dict[tuple[str, str], tuple[str, ...]] = {}
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._rr = itertools.count()

    def set_routes(self, app: str, component: str, endpoints: tuple[str, ...]) -> None:
        with self._lock:
            self._routes[(app, component)] = tuple(endpoints)

    def drop_app(self, app: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == app]:
                del self._routes[key]

    def endpoints(self, app: str, component: str) -> tuple[str, ...]:
        with self._lock:
            return self._routes.get((app, component), ())

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()

    def _stub(self, address: str) -> dataplane_pb2_grpc.DataPlaneStub:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                self._channels[address] = channel
        return dataplane_pb2_grpc.DataPlaneStub(channel)

    def forwarder(
        self, app: str, importer: str, exporter: str, interface: str, function: str, signature: Signature
    ) -> Callable[..., Any]:
        """A host function forwarding ``interface#function`` to ``exporter``."""
        label = f"{exporter} {interface}#{function}"

        link = (app, importer, exporter)

        def forward(*args: Any) -> Any:
            self.counter.add(link)
            endpoints = self.endpoints(app, exporter)
            if not endpoints:
                raise Unavailable(
                    f"no node serves {app}/{exporter} for {label}; is it placed?", app=app, component=exporter
                )
            address = endpoints[next(self._rr) % len(endpoints)]
            request = dataplane_pb2.CallRequest(
                app=app,
                component=exporter,
                interface=interface,
                function=function,
                args=signature.args_to_proto(args),
                caller=self.node,
            )
            deadline = get_call_deadline()
            timeout = self.default_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise DeadlineExceeded(f"deadline passed before forwarding {label}")
            try:
                reply = self._stub(address).Call(request, timeout=timeout)
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if isinstance(error, Unavailable):
                    error.message = f"{label} at {address}: {error.message}"
                    error.args = (error.message,)
                raise error from None
            return signature.result_from_proto(reply.result if reply.HasField("result") else None)

        return forward
