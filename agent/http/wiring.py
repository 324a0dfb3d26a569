"""What the agent's shell needs to give a component the agent's wasi:http: its host (allowed outbound hosts,
denials counted and reported, stdout and stderr into the component's log) and, when it has routes, its
place at the front door."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable

from agent.control.session import ControlSession
from agent.dataplane.forwarder import Router
from agent.dataplane.server import DataPlaneServicer
from agent.http.component import HttpComponent
from agent.http.front_door import FrontDoor
from agent.http.handover import RouteTarget
from agent.http.host import HttpHost, uses_http
from agent.http.outbound import Outbound
from agent.observe.telemetry import Telemetry
from agent.runtime.denials import DenialLog
from agent.runtime.engine import ComponentTemplate, Runtime
from agent.runtime.guest_output import GuestOutput
from neon._proto import dataplane_pb2, dataplane_pb2_grpc
from neon.errors import NeonGridError
from neon.model import ComponentAssignment
from neon.observe import log
from neon.observe.metrics import Meter
from neon.outbound_hosts import parse_host_pattern

_log = log.get("neon.agent.http")


def http_host(
    runtime: Runtime,
    component: Any,
    label: str,
    spec: ComponentAssignment,
    denials: DenialLog,
    output: Callable[[str, str], None] | None,
) -> HttpHost | None:
    """The agent's wasi:http for a component that imports it (None for one that does not)."""
    if not uses_http(runtime.import_names(component)):
        return None
    patterns = tuple(parse_host_pattern(text, "grants.allowedOutboundHosts") for text in spec.grants.outbound_hosts)

    def denied(what: str) -> None:
        message = f"{label} used {what}, which it was not granted; the request was refused"
        _log.warning("capability denied", component=label, capability=what)
        denials.add(message)

    host = HttpHost(runtime.engine, component, label, Outbound(patterns, denied))
    lines = {stream: GuestOutput(label, stream, output) for stream in ("stdout", "stderr")}
    lock = threading.Lock()

    def sink(stream: str, data: bytes) -> None:
        with lock:
            lines[stream](data)

    host.output_sink = sink
    return host


def http_component(
    app: str,
    name: str,
    template: ComponentTemplate,
    host: HttpHost | None,
    spec: ComponentAssignment,
    on_trap: Callable[[NeonGridError], str],
    meter: Meter | None = None,
) -> HttpComponent | None:
    """The component's place at the front door, when it has routes (its first instance made, to check)."""
    if not spec.http.enabled or host is None:
        return None
    served = HttpComponent(app, name, template, host, spec.http, on_trap, meter)
    served.warm()
    return served


def connect_front_door(
    door: FrontDoor, router: Router, dataplane: DataPlaneServicer, session: ControlSession, telemetry: Telemetry
) -> None:
    """Hand requests this node does not serve to the nodes that do (over the data plane, nearest first, with the
    route table the heartbeats bring), and serve the requests other nodes hand here."""

    def open(
        endpoint: str, frames: Iterator[dataplane_pb2.HttpFrame], timeout: float
    ) -> Iterator[dataplane_pb2.HttpFrame]:
        return dataplane_pb2_grpc.DataPlaneStub(router.channel(endpoint)).ServeHttp(frames, timeout=timeout)

    def rtt(node: str) -> float | None:
        return telemetry.peer_rtt.value(node) or None

    door.handover.open = open
    door.handover.rtt = rtt
    dataplane.serve_http = door.serve_handed_over
    session.on_routes = lambda routes: door.handover.set_routes([RouteTarget(*r) for r in routes])
