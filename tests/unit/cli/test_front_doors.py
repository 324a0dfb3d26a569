"""`neon get routes`: routes joined with where their components run and the nodes' front-door URLs."""

from __future__ import annotations

from types import SimpleNamespace as NS

from cli.front_doors import route_rows
from neon import manifest

DIGEST = "sha256:" + "ab" * 32


def _app(name: str, routes: list[str], replicas: list[tuple[str, str]]) -> NS:
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": manifest.KIND,
            "metadata": {"name": name},
            "spec": {"components": [{"name": "web", "artifact": DIGEST, "http": {"routes": routes}}]},
        }
    )
    reps = [NS(node=node, state=state) for node, state in replicas]
    return NS(name=name, manifest_yaml=spec.to_yaml(), components=[NS(name="web", replicas=reps)])


def test_rows_name_each_route_with_its_urls() -> None:
    nodes = [NS(name="edge-1", http_url="http://10.0.0.1:8080"), NS(name="edge-2", http_url="")]
    apps = [
        _app("shop", ["/shop/...", "/items/:id"], [("edge-1", "Running"), ("edge-2", "Running")]),
        _app("blog", ["/blog"], [("edge-1", "Starting")]),
    ]
    rows = route_rows(apps, nodes)
    assert [(r["route"], r["app"], r["nodes"], r["urls"]) for r in rows] == [
        ("/blog", "blog", [], []),
        ("/items/:id", "shop", ["edge-1", "edge-2"], ["http://10.0.0.1:8080/items"]),
        ("/shop/...", "shop", ["edge-1", "edge-2"], ["http://10.0.0.1:8080/shop"]),
    ]
