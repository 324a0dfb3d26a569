"""HTTP components checked at apply, before anything is stored: a component with routes must export
``wasi:http/incoming-handler@0.2.x``, and no route of the application may overlap a route another
application already serves (no request may match both: one application cannot take over part of
another's). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controlplane.wit.interfaces import Summary
from neon.errors import InvalidManifest
from neon.http_spec import HANDLER
from neon.manifest import AppSpec
from neon.routes import overlaps, parse_route


def check_http_exports(spec: AppSpec, summaries: Mapping[str, Summary]) -> None:
    for i, comp in enumerate(spec.components):
        if not comp.http.enabled:
            continue
        exported = summaries[comp.artifact].get("wasi_exports", [])
        if not any(name.startswith(HANDLER) for name in exported):
            has = ", ".join(exported + sorted(k for k in summaries[comp.artifact]["exports"] if k)) or "nothing"
            raise InvalidManifest(
                f"spec.components[{i}].http: {comp.name} has routes but does not export {HANDLER}.x "
                f"(it exports: {has}); build it for the wasi:http/proxy world, or remove its http block",
                field=f"spec.components[{i}].http",
            )


def check_route_claims(spec: AppSpec, others: Iterable[AppSpec]) -> None:
    """Refuse a route of ``spec`` that overlaps one another application serves, naming both."""
    claimed = [
        (other.name, comp.name, parse_route(text, "route"))
        for other in others
        if other.name != spec.name
        for comp in other.components
        for text in comp.http.routes
    ]
    for i, comp in enumerate(spec.components):
        for r, text in enumerate(comp.http.routes):
            field = f"spec.components[{i}].http.routes[{r}]"
            route = parse_route(text, field)
            for app, owner, theirs in claimed:
                if overlaps(route, theirs):
                    raise InvalidManifest(
                        f"{field} {route} ({spec.name}/{comp.name}) overlaps {theirs}, which application "
                        f"{app} serves ({app}/{owner}); change one of them, or delete {app}",
                        field=field,
                    )
