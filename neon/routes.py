"""HTTP routes in Spin's syntax: what they match, and which pairs are ambiguous. Pure; shared by the
control plane (checked at apply) and the agent (requests matched to components).

- ``/hello``: that path exactly;
- ``/users/:id``: a ``:name`` segment matches any one segment, handed to nobody but counted as a match;
- ``/static/...``: a trailing wildcard matches ``/static`` and everything below it;
- ``example.com/api/...``: a route may start with a host name (matched without the port, case-insensitive).

When several routes of one application match a request, the more specific wins: segment by segment a
literal beats a ``:name``, which beats the wildcard; a route with a host beats one without. Two routes are
*ambiguous* when some request matches both and neither is more specific at every segment: such a pair is
refused. Routes of different applications may not *overlap* at all (no request may match both), so no
application can take over part of another's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from neon.errors import InvalidManifest

END, LITERAL, PARAM, WILDCARD = 3, 2, 1, 0  # specificity: the path's end, a literal, :name, ...
MAX_ROUTE = 512
T = TypeVar("T")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=@%-]+$")
_PARAM = re.compile(r"^:[A-Za-z_][A-Za-z0-9_]*$")
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Route:
    """A parsed route: an optional host and its path segments (``:name`` and a last ``...`` kept as written)."""

    text: str
    host: str | None
    segments: tuple[str, ...]

    @property
    def wildcard(self) -> bool:
        return bool(self.segments) and self.segments[-1] == "..."

    def kinds(self) -> tuple[int, ...]:
        return tuple(_kind(s) for s in self.segments)

    def match(self, host: str, path: str) -> bool:
        """Whether a request for ``host`` (a Host header, port allowed) and ``path`` (query allowed) is served."""
        if self.host is not None and _bare_host(host) != self.host:
            return False
        return _match(self.segments, split_path(path))

    def __str__(self) -> str:
        return self.text


def parse_route(text: object, field: str) -> Route:
    """A route from the manifest; InvalidManifest naming ``field`` and what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidManifest(f"{field} must be a route like '/hello' or '/api/...', got {text!r}", field=field)
    if len(text) > MAX_ROUTE:
        raise InvalidManifest(f"{field} is {len(text)} characters; a route has at most {MAX_ROUTE}", field=field)
    host: str | None = None
    path = text
    if not text.startswith("/"):
        host, slash, rest = text.partition("/")
        if not slash:
            raise InvalidManifest(f"{field}: {text!r} must start with '/' (or a host name and a path)", field=field)
        if not _HOST.match(host):
            raise InvalidManifest(
                f"{field}: {text!r} must start with '/' or a lowercase host name ('example.com/api/...')", field=field
            )
        path = slash + rest if slash else "/"
    segments = tuple(s for s in path.split("/")[1:] if s != "") if path != "/" else ()
    if path.endswith("/") and path != "/" and not segments:
        segments = ()
    names: set[str] = set()
    for i, seg in enumerate(segments):
        if seg == "...":
            if i != len(segments) - 1:
                raise InvalidManifest(f"{field}: '...' may only end a route, in {text!r}", field=field)
        elif seg.startswith(":"):
            if not _PARAM.match(seg):
                raise InvalidManifest(f"{field}: {seg!r} is not a valid ':name' segment in {text!r}", field=field)
            if seg in names:
                raise InvalidManifest(f"{field}: {seg} is used twice in {text!r}", field=field)
            names.add(seg)
        elif seg in (".", "..") or not _SEGMENT.match(seg) or "..." in seg:
            raise InvalidManifest(f"{field}: segment {seg!r} is not allowed in {text!r}", field=field)
    if "//" in path:
        raise InvalidManifest(f"{field}: {text!r} has an empty segment ('//')", field=field)
    return Route(text=text, host=host, segments=segments)


def overlaps(a: Route, b: Route) -> bool:
    """True when some request matches both routes (a route without a host matches every host)."""
    hosts_meet = a.host is None or b.host is None or a.host == b.host
    return hosts_meet and _overlap(a.segments, b.segments)


def ambiguous(a: Route, b: Route) -> bool:
    """True when some request matches both routes and neither is more specific than the other."""
    if a.host != b.host or not _overlap(a.segments, b.segments):
        return False
    return not (_dominates(a, b) or _dominates(b, a))


def best(routes: Sequence[tuple[Route, T]], host: str, path: str) -> T | None:
    """The value of the most specific route matching a request (None: none matches)."""
    found = [(r, v) for r, v in routes if r.match(host, path)]
    if not found:
        return None
    n = max(len(r.segments) for r, _ in found) + 1
    return max(found, key=lambda rv: (rv[0].host is not None, _seq(rv[0], n)))[1]


def url_prefix(route: str) -> str:
    """The fixed path a route starts with, to print a URL for it (``/users/:id`` -> ``/users``)."""
    path = route if route.startswith("/") else "/" + route.partition("/")[2]
    fixed = []
    for segment in path.split("/")[1:]:
        if segment == "..." or segment.startswith(":"):
            break
        fixed.append(segment)
    return "/" + "/".join(fixed)


def split_path(path: str) -> tuple[str, ...]:
    """A request path's segments (the query string and empty segments dropped)."""
    return tuple(s for s in path.split("?", 1)[0].split("#", 1)[0].split("/") if s)


def _kind(segment: str) -> int:
    return WILDCARD if segment == "..." else PARAM if segment.startswith(":") else LITERAL


def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    for i, seg in enumerate(pattern):
        if seg == "...":
            return True
        if i >= len(path):
            return False
        if not seg.startswith(":") and seg != path[i]:
            return False
    return len(path) == len(pattern)


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether some path matches both patterns."""
    for i in range(max(len(a), len(b)) + 1):
        sa = a[i] if i < len(a) else None
        sb = b[i] if i < len(b) else None
        if sa == "..." or sb == "...":
            return True  # a wildcard takes whatever the other still needs (the other may end here too)
        if sa is None or sb is None:
            return sa is None and sb is None
        if _kind(sa) == LITERAL and _kind(sb) == LITERAL and sa != sb:
            return False
    return True


def _dominates(a: Route, b: Route) -> bool:
    """``a`` is at least as specific as ``b`` at every position, and more specific at one. Past its last
    segment a route has the path's end (most specific) or, after ``...``, the wildcard."""
    n = max(len(a.segments), len(b.segments)) + 1
    pairs = list(zip(_seq(a, n), _seq(b, n), strict=True))
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def _seq(route: Route, n: int) -> list[int]:
    kinds = list(route.kinds())
    tail = WILDCARD if route.wildcard else END
    if route.wildcard:
        kinds.pop()
    return kinds + [tail] * (n - len(kinds))
