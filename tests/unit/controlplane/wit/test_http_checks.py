"""Apply-time checks of HTTP components against real binaries: routes need the handler export, and no route
may be ambiguous with one another application serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.devcluster.guests import build_hello_http
from controlplane.wit.http_checks import check_http_exports, check_route_claims
from controlplane.wit.interfaces import describe
from neon import manifest
from neon.errors import InvalidManifest

HELLO = "sha256:" + "11" * 32
PARSER = "sha256:" + "22" * 32


def _app(name: str, routes: list[str], artifact: str = HELLO) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": manifest.KIND,
            "metadata": {"name": name},
            "spec": {"components": [{"name": "web", "artifact": artifact, "http": {"routes": routes}}]},
        }
    )


@pytest.fixture(scope="module")
def summaries(log_analyzer: dict[str, Path]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {HELLO: describe(build_hello_http()), PARSER: describe(log_analyzer["parser"])}


def test_the_handler_export_is_read_from_the_binary(summaries: dict) -> None:  # type: ignore[type-arg]
    assert summaries[HELLO]["wasi_exports"] == ["wasi:http/incoming-handler@0.2.0"]
    check_http_exports(_app("hello", ["/hello/..."]), summaries)
    with pytest.raises(InvalidManifest) as err:
        check_http_exports(_app("hello", ["/hello/..."], artifact=PARSER), summaries)
    assert err.value.field == "spec.components[0].http"
    assert "does not export wasi:http/incoming-handler@0.2.x" in err.value.message
    assert "cyber-systems:logs/parser@0.1.0" in err.value.message


def test_another_applications_route_is_not_taken() -> None:
    others = [_app("shop", ["/shop/...", "/api/:v/items"]), _app("mine", ["/x"])]
    check_route_claims(_app("mine", ["/x", "/shopping"]), others)  # its own earlier generation is no claim
    with pytest.raises(InvalidManifest) as err:
        check_route_claims(_app("blog", ["/api/v1/:what"]), others)
    assert err.value.field == "spec.components[0].http.routes[0]"
    assert "overlaps /api/:v/items, which application shop serves (shop/web)" in err.value.message
    with pytest.raises(InvalidManifest, match="overlaps /shop/..."):  # more specific, but still part of it
        check_route_claims(_app("blog", ["/shop/special"]), others)
    with pytest.raises(InvalidManifest, match="overlaps /shop/..."):  # a host's route meets a hostless one
        check_route_claims(_app("blog", ["shop.io/shop/x"]), others)
