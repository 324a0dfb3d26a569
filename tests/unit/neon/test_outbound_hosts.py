"""grants.allowedOutboundHosts patterns: what each allows, and malformed ones refused naming the field."""

from __future__ import annotations

import pytest

from neon.errors import InvalidManifest
from neon.outbound_hosts import parse_host_pattern


@pytest.mark.parametrize(
    ("pattern", "scheme", "host", "port", "allowed"),
    [
        ("https://api.example.com", "https", "api.example.com", None, True),
        ("https://api.example.com", "https", "API.example.com", 443, True),
        ("https://api.example.com", "https", "api.example.com", 8443, False),
        ("https://api.example.com", "http", "api.example.com", None, False),
        ("https://*.example.com:443", "https", "a.b.example.com", 443, True),
        ("https://*.example.com:443", "https", "example.com", 443, False),
        ("https://*.example.com:443", "https", "badexample.com", 443, False),
        ("http://127.0.0.1:*", "http", "127.0.0.1", 5555, True),
        ("http://127.0.0.1:*", "http", "127.0.0.2", 5555, False),
        ("*://example.com:8080", "http", "example.com", 8080, True),
        ("*://example.com", "https", "example.com", None, True),
        ("*://example.com", "https", "example.com", 80, False),
        ("https://*", "https", "anything.io", None, True),
        ("http://[::1]:8080", "http", "::1", 8080, True),
    ],
)
def test_patterns(pattern: str, scheme: str, host: str, port: int | None, allowed: bool) -> None:
    assert parse_host_pattern(pattern, "f").allows(scheme, host, port) is allowed


@pytest.mark.parametrize("bad", ["api.example.com", "ftp://x", "https://", "https://a b", "https://x:99999", 7])
def test_malformed_patterns_are_refused(bad: object) -> None:
    with pytest.raises(InvalidManifest) as err:
        parse_host_pattern(bad, "spec.components[0].grants.allowedOutboundHosts[0]")
    assert err.value.attrs["field"] == "spec.components[0].grants.allowedOutboundHosts[0]"
