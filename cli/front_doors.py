"""The routes the cluster serves at its nodes' front doors, joined from the applications (their manifests and
where each component runs) and the nodes (their front-door URLs). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from neon import manifest


def route_rows(apps: Iterable[Any], nodes: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per route: route, app, component, the nodes running it, and a URL on each node with a
    front door (a wildcard's or a ``:name`` segment's URL is its fixed prefix)."""
    doors = {n.name: n.http_url for n in nodes}
    rows = []
    for app in apps:
        if not app.manifest_yaml:
            continue  # a status without its manifest (nothing to say of routes)
        running = {c.name: sorted({r.node for r in c.replicas if r.state == "Running"}) for c in app.components}
        for route, component, where, urls in manifest.load(app.manifest_yaml).served_routes(running, doors):
            rows.append({"route": route, "app": app.name, "component": component, "nodes": where, "urls": urls})
    return sorted(rows, key=lambda r: (r["route"], r["app"]))
