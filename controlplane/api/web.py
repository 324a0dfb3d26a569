"""The control plane's read-only HTTP pages: Prometheus metrics, the dashboard and its JSON.

``/metrics`` has this replica's own series (reconcile passes, events) and the
cluster's state (applications by phase, replicas, nodes), plus what every
agent last reported, re-labelled by node under ``neon_cluster_*`` so that a
Prometheus scraping agents directly does not count them twice.
``/sd/agents`` lists the agents' metrics endpoints for Prometheus' HTTP service
discovery. ``/`` is the dashboard, which polls ``/api/v1/overview``.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from google.protobuf import json_format

from controlplane.api.plane import Plane
from neon import manifest
from neon.observe.metrics import CONTENT_TYPE, Counter, Family, Gauge, Histogram, HistogramValue, Registry, render
from neon.rpc.http import HttpServer, Request, Response
from neon.security.authz import HTTP_READERS

PHASES = ("Pending", "Placing", "Deploying", "Running", "Degraded", "Unschedulable", "Failed")


class Web:
    """Routes of one replica's HTTP server, and the metrics it keeps itself."""

    def __init__(self, cp: Plane) -> None:
        self.cp = cp
        self.registry = Registry()
        self.reconciles = self.registry.histogram(
            "neon_reconcile_seconds", "Time a reconcile pass took on the leader", ()
        )
        self.events = self.registry.counter("neon_events_total", "Events this replica recorded, by kind", ("kind",))
        self.page = resources.files("controlplane.api").joinpath("dashboard.html").read_bytes()

    def install(self, server: HttpServer) -> None:
        server.route("/metrics", self.metrics, HTTP_READERS)
        server.route("/api/v1/overview", self.overview, HTTP_READERS)
        server.route("/sd/agents", self.agents, HTTP_READERS)
        server.route("/", self.dashboard, HTTP_READERS)

    async def dashboard(self, request: Request) -> Response:
        return Response(200, self.page, "text/html; charset=utf-8")

    async def agents(self, request: Request) -> Response:
        """Prometheus HTTP service discovery: one target group per agent serving metrics."""
        nodes, _ = await self.cp.reads.nodes()
        return Response.json(
            [
                {"targets": [n.metrics_address], "labels": {"node": n.name, **_prom_labels(n.labels)}}
                for n in sorted(nodes.values(), key=lambda n: n.name)
                if n.metrics_address
            ]
        )

    async def metrics(self, request: Request) -> Response:
        families: list[Family] = []
        info = Gauge("neon_controlplane_info", "This control-plane replica", ("identity", "leader"))
        view = await self.cp.reads.view()
        leader = view.leader or {}
        info.set(self.cp.identity, str(leader.get("identity") == self.cp.identity).lower(), value=1)
        families.append(info)
        live, unreachable = await self.cp.reads.nodes(view)
        statuses = await self.cp.reads.statuses(view=view)
        apps = Gauge("neon_applications", "Applications by phase", ("phase",))
        for phase in PHASES:
            apps.set(phase, value=sum(1 for s in statuses if s["phase"] == phase))
        app_phase = Gauge("neon_application_phase", "1 for each application's current phase", ("app", "phase"))
        desired = Gauge("neon_component_desired_replicas", "Replicas asked for", ("app", "component"))
        ready = Gauge("neon_component_ready_replicas", "Replicas Running", ("app", "component"))
        for status in statuses:
            app_phase.set(status["name"], status["phase"], value=1)
            for comp in status["components"]:
                desired.set(status["name"], comp["name"], value=comp["desired_replicas"])
                ready.set(status["name"], comp["name"], value=comp["ready_replicas"])
        nodes = Gauge("neon_nodes", "Nodes by state", ("state",))
        nodes.set("Ready", value=len(live))
        nodes.set("Unreachable", value=len(unreachable))
        families += [apps, app_phase, desired, ready, nodes]
        families += _cluster_families(await self.cp.reads.telemetry())
        return Response.text(self.registry.render() + render(families), content_type=CONTENT_TYPE)

    async def overview(self, request: Request) -> Response:
        """Everything the dashboard draws, in one document."""
        view = await self.cp.reads.view()
        live, unreachable = await self.cp.reads.nodes(view)
        nodes = [
            {
                "name": n.name,
                "state": "Ready",
                "tier": _tier(n.labels),
                "labels": n.labels,
                "dataplane": n.dataplane_address,
                "http": n.http_url,
                "version": n.version,
            }
            for n in live.values()
        ]
        nodes += [
            {"name": info.name, "state": "Unreachable", "tier": _tier(info.labels), "labels": info.labels}
            for info, _ in unreachable.values()
        ]
        statuses = await self.cp.reads.statuses(view=view)
        doors = {n.name: n.http_url for n in live.values()}
        for status in statuses:
            status["routes"] = _routes(status, doors)
            status.pop("manifest_yaml", None)
        telemetry = await self.cp.reads.telemetry()
        _, events = await self.cp.store.events.recent_events(25)
        leader = view.leader or {}
        return Response.json(
            {
                "time": time.time(),
                "controlplane": {"identity": self.cp.identity, "leader": leader.get("identity", "")},
                "nodes": sorted(nodes, key=lambda n: (n["tier"] != "edge", n["tier"], n["name"])),
                "apps": statuses,
                "metrics": {
                    "components": [
                        json_format.MessageToDict(c, preserving_proto_field_name=True)
                        for r in telemetry
                        for c in r.components
                    ],
                    "links": [
                        json_format.MessageToDict(link, preserving_proto_field_name=True)
                        for r in telemetry
                        for link in r.link_metrics
                    ],
                },
                "events": [e.to_dict() for e in reversed(events)],
            }
        )


def _routes(status: dict[str, Any], doors: dict[str, str]) -> list[dict[str, Any]]:
    """An application's HTTP routes, each with its component and a URL on every front door running it."""
    text = status.get("manifest_yaml") or ""
    if not text:
        return []
    running = {
        c["name"]: sorted({r["node"] for r in c.get("replicas", []) if r.get("state") == "Running"})
        for c in status.get("components", [])
    }
    return [
        {"route": route, "component": component, "urls": urls}
        for route, component, _, urls in manifest.load(text).served_routes(running, doors)
    ]


def _tier(labels: dict[str, str]) -> str:
    return labels.get("tier") or labels.get("neon.io/tier") or "other"


def _prom_labels(labels: dict[str, str]) -> dict[str, str]:
    """Node labels as Prometheus target labels (names may only hold letters, digits and _)."""
    return {"__meta_neon_label_" + "".join(c if c.isalnum() else "_" for c in k): v for k, v in labels.items()}


def _cluster_families(reports: list[Any]) -> list[Family]:
    comp = ("app", "component", "node")
    link = ("app", "importer", "exporter", "node", "mode")
    calls = Counter("neon_cluster_component_calls_total", "Calls into a component, as its node last reported", comp)
    errors = Counter("neon_cluster_component_errors_total", "Calls that failed, as the node last reported", comp)
    traps = Counter("neon_cluster_component_traps_total", "Calls that trapped, as the node last reported", comp)
    latency = Histogram("neon_cluster_component_call_seconds", "Call latency, as the node last reported", comp)
    instances = Gauge("neon_cluster_component_instances", "Instances, as the node last reported", comp)
    link_calls = Counter("neon_cluster_link_calls_total", "Calls over a link from the importer's node", link)
    link_errors = Counter("neon_cluster_link_errors_total", "Failed calls over a link", link)
    link_latency = Histogram("neon_cluster_link_call_seconds", "Latency over a link, seen by the importer", link)
    link_bytes = Counter(
        "neon_cluster_link_bytes_total",
        "Bytes forwarded across nodes",
        ("app", "importer", "exporter", "node", "direction"),
    )
    for report in reports:
        for c in report.components:
            key = (c.app, c.component, c.node)
            calls.set(*key, value=c.calls)
            errors.set(*key, value=c.errors)
            traps.set(*key, value=c.traps)
            instances.set(*key, value=c.instances)
            if c.latency_buckets:
                latency.set(HistogramValue(tuple(c.latency_buckets), c.latency_sum), *key)
        for m in report.link_metrics:
            key5 = (m.app, m.importer, m.exporter, m.node, m.mode)
            link_calls.set(*key5, value=m.calls)
            link_errors.set(*key5, value=m.errors)
            if m.latency_buckets:
                link_latency.set(HistogramValue(tuple(m.latency_buckets), m.latency_sum), *key5)
            if m.mode == "remote":
                link_bytes.set(m.app, m.importer, m.exporter, m.node, "sent", value=m.bytes_sent)
                link_bytes.set(m.app, m.importer, m.exporter, m.node, "received", value=m.bytes_received)
    return [calls, errors, traps, latency, instances, link_calls, link_errors, link_latency, link_bytes]
