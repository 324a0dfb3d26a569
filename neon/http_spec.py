"""A component's ``http`` settings (the front door: routes it serves on the nodes where it runs, how
its instances are used, the limits of one request): the type and its parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neon._validate import list_field, mapping, parse_duration, parse_size
from neon.errors import InvalidManifest
from neon.routes import ambiguous, parse_route

INSTANCE_MODES = ("fresh", "reuse")  # a fresh instance per request (the default), or instances kept
HANDLER = "wasi:http/incoming-handler@0.2"  # the export an HTTP component must have (any 0.2 patch)


@dataclass(frozen=True)
class HttpSpec:
    """How the agent serves a component over HTTP."""

    routes: tuple[str, ...] = ()
    instances: str = "fresh"
    max_concurrent: int = 64  # requests at once per node; more are answered 503
    max_body_bytes: int = 1 << 20  # a larger request body is answered 413
    max_header_bytes: int = 16 << 10  # a request line or header field over this is answered 431
    first_byte_timeout: float = 10.0  # the guest must have set its response by then, else 504
    request_timeout: float = 30.0  # the whole request, body included, else 408 (reading) or 504

    @property
    def enabled(self) -> bool:
        return bool(self.routes)


def http_to_dict(spec: HttpSpec) -> dict[str, Any]:
    return {
        "routes": list(spec.routes),
        "instances": spec.instances,
        "maxConcurrent": spec.max_concurrent,
        "maxBodySize": spec.max_body_bytes,
        "maxHeaderSize": spec.max_header_bytes,
        "firstByteTimeout": f"{spec.first_byte_timeout:g}s",
        "requestTimeout": f"{spec.request_timeout:g}s",
    }


_FIELDS = {
    "routes",
    "instances",
    "maxConcurrent",
    "maxBodySize",
    "maxHeaderSize",
    "firstByteTimeout",
    "requestTimeout",
}


def parse_http(doc: Any, path: str) -> HttpSpec:
    """The ``http`` block of a component; each error names its field."""
    http = mapping(doc, path, required={"routes"}, optional=_FIELDS - {"routes"})
    items = list_field(http, "routes", path)
    if not items:
        raise InvalidManifest(f"{path}.routes must list at least one route, like '/hello/...'", field=f"{path}.routes")
    routes = [parse_route(text, f"{path}.routes[{i}]") for i, text in enumerate(items)]
    for i, a in enumerate(routes):
        for j in range(i):
            if ambiguous(routes[j], a):
                raise InvalidManifest(
                    f"{path}.routes[{i}] {a} overlaps {path}.routes[{j}] {routes[j]}: a request could match "
                    "both and neither is more specific",
                    field=f"{path}.routes[{i}]",
                )
    default = HttpSpec()
    instances = http.get("instances", default.instances)
    if instances not in INSTANCE_MODES:
        raise InvalidManifest(
            f"{path}.instances must be one of {', '.join(INSTANCE_MODES)}, got {instances!r}",
            field=f"{path}.instances",
        )
    concurrent = http.get("maxConcurrent", default.max_concurrent)
    if isinstance(concurrent, bool) or not isinstance(concurrent, int) or not 1 <= concurrent <= 10_000:
        raise InvalidManifest(
            f"{path}.maxConcurrent must be an integer from 1 to 10000, got {concurrent!r}",
            field=f"{path}.maxConcurrent",
        )
    body = _size(http, "maxBodySize", path, default.max_body_bytes, 0, 1 << 30)
    header = _size(http, "maxHeaderSize", path, default.max_header_bytes, 1 << 10, 1 << 20)
    whole = _duration(http, "requestTimeout", path, default.request_timeout)
    first = _duration(http, "firstByteTimeout", path, min(default.first_byte_timeout, whole))
    if first > whole:
        raise InvalidManifest(
            f"{path}.firstByteTimeout ({first:g}s) is longer than {path}.requestTimeout ({whole:g}s)",
            field=f"{path}.firstByteTimeout",
        )
    return HttpSpec(
        routes=tuple(r.text for r in routes),
        instances=instances,
        max_concurrent=concurrent,
        max_body_bytes=body,
        max_header_bytes=header,
        first_byte_timeout=first,
        request_timeout=whole,
    )


def _size(doc: dict[str, Any], key: str, path: str, default: int, low: int, high: int) -> int:
    if key not in doc:
        return default
    value = parse_size(doc[key], f"{path}.{key}")
    if not low <= value <= high:
        raise InvalidManifest(f"{path}.{key} must be between {low} and {high} bytes", field=f"{path}.{key}")
    return value


def _duration(doc: dict[str, Any], key: str, path: str, default: float) -> float:
    if key not in doc:
        return default
    value = parse_duration(doc[key], f"{path}.{key}")
    if not 0.01 <= value <= 3600:
        raise InvalidManifest(f"{path}.{key} must be between 10ms and 1h", field=f"{path}.{key}")
    return value
