"""``grants.allowedOutboundHosts``, Spin's syntax: which URLs a component's outbound HTTP may reach. Pure.

- ``https://api.example.com``: that host, on the scheme's default port (443);
- ``https://*.example.com:443``: any subdomain of example.com (not example.com itself);
- ``http://127.0.0.1:*``: any port; ``*://example.com:8080``: either scheme;
- ``https://*``: any host over https (say so only on purpose).

Nothing is allowed unless a pattern allows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neon.errors import InvalidManifest

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(\*|(\*\.)?{_LABEL}(\.{_LABEL})*|\[[0-9a-f:.]+\])$")
_PATTERN = re.compile(r"^(?P<scheme>\*|https?)://(?P<host>\[[^\]]+\]|[^:/]+)(:(?P<port>\*|\d{1,5}))?/?$")


@dataclass(frozen=True)
class HostPattern:
    text: str
    scheme: str  # http, https or *
    host: str  # a name, *.suffix, an IP, or *
    port: int | None  # None: the scheme's default port
    any_port: bool = False

    def allows(self, scheme: str, host: str, port: int | None) -> bool:
        scheme, host = scheme.lower(), host.lower().strip("[]")
        if self.scheme != "*" and scheme != self.scheme:
            return False
        want = self.host.strip("[]")
        if want != "*":
            if want.startswith("*."):
                if not host.endswith(want[1:]) or host == want[2:]:
                    return False
            elif host != want:
                return False
        actual = port if port is not None else DEFAULT_PORTS.get(scheme)
        if self.any_port:
            return True
        return actual == (self.port if self.port is not None else DEFAULT_PORTS.get(scheme))


def parse_host_pattern(text: object, field: str) -> HostPattern:
    if not isinstance(text, str):
        raise InvalidManifest(
            f"{field} must be a URL pattern like 'https://api.example.com', got {text!r}", field=field
        )
    found = _PATTERN.match(text.strip().lower())
    if not found or not _HOST.match(found["host"]):
        raise InvalidManifest(
            f"{field}: {text!r} is not an outbound host pattern; write scheme://host[:port], e.g. "
            "'https://api.example.com', 'https://*.example.com:443' or 'http://127.0.0.1:*'",
            field=field,
        )
    scheme, port_text = found["scheme"], found["port"]
    port = int(port_text) if port_text not in (None, "*") else None
    if port is not None and not 1 <= port <= 65535:
        raise InvalidManifest(f"{field}: port {port} is out of range in {text!r}", field=field)
    return HostPattern(text=text, scheme=scheme, host=found["host"], port=port, any_port=port_text == "*")


def allowed(patterns: tuple[HostPattern, ...], scheme: str, host: str, port: int | None) -> bool:
    return any(p.allows(scheme, host, port) for p in patterns)
