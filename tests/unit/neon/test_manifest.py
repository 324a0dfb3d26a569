"""Manifest validation: every error names its field."""

from __future__ import annotations

import pytest
import yaml

from cli.devcluster.guests import EXAMPLES
from neon import manifest
from neon.errors import InvalidManifest

DIGEST = "sha256:" + "ab" * 32


def _doc(**spec_overrides: object) -> dict:
    doc = yaml.safe_load((EXAMPLES / "log-analyzer" / "app.yaml").read_text())
    for comp in doc["spec"]["components"]:
        comp["artifact"] = DIGEST
    doc["spec"].update(spec_overrides)
    return doc


def test_example_parses_and_round_trips() -> None:
    spec = manifest.parse(_doc())
    assert spec.name == "log-analyzer"
    assert [c.name for c in spec.components] == ["gateway", "ingestor", "processor", "parser", "archiver"]
    assert spec.component("gateway").http.routes == ("/logs",)
    assert spec.component("parser").placement.node_selector == {"tier": "edge"}
    assert spec.component("archiver").grants.volumes[0].path == "/archive"
    assert spec.links_from("processor")[0].import_name == "cyber-systems:logs/parser@0.1.0"
    assert manifest.load(spec.to_yaml()) == spec


def test_pull_secrets_and_rollout_settings_round_trip() -> None:
    spec = manifest.parse(_doc(pullSecrets=["registry", "mirror", "registry"], rollout={"prefetchTimeout": "90s"}))
    assert spec.pull_secrets == ("registry", "mirror") and spec.rollout.prefetch_timeout == 90.0
    assert manifest.load(spec.to_yaml()) == spec


def test_paths_are_allowed_only_client_side() -> None:
    text = (EXAMPLES / "log-analyzer" / "app.yaml").read_text()
    assert manifest.load(text, require_digests=False).component("parser").artifact == "build/parser.wasm"
    with pytest.raises(InvalidManifest) as err:
        manifest.load(text)
    assert err.value.field == "spec.components[0].artifact"


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(apiVersion="v2"), "apiVersion", "neon-grid.dev/v1"),
        (lambda d: d.update(kind="Pod"), "kind", "Application"),
        (lambda d: d["metadata"].update(name="Log_Analyzer"), "metadata.name", "DNS label"),
        (lambda d: d["metadata"].pop("name"), "metadata.name", "missing"),
        (lambda d: d["spec"].update(extra=1), "spec.extra", "unknown field"),
        (lambda d: d["spec"]["components"][1].update(replica=2), "spec.components[1].replica", "unknown field"),
        (lambda d: d["spec"]["components"][0].update(replicas=0), "spec.components[0].replicas", "1 to"),
        (lambda d: d["spec"]["components"][0].update(replicas=True), "spec.components[0].replicas", "integer"),
        (lambda d: d["spec"]["components"][4].update(name="parser"), "spec.components[4].name", "used twice"),
        (
            lambda d: d["spec"]["components"][0]["placement"]["nodeSelector"].update(gpu=True),
            "spec.components[0].placement.nodeSelector.gpu",
            "quote",
        ),
        (lambda d: d["spec"]["links"][0].update(exporter="nope"), "spec.links[0].exporter", "not a component"),
        (lambda d: d["spec"]["links"][1].update(exporter="ingestor"), "spec.links[1].exporter", "its own import"),
        (lambda d: d["spec"]["links"][0].update(**{"import": "parser"}), "spec.links[0].import", "WIT interface"),
        (lambda d: d["spec"]["links"].append(dict(d["spec"]["links"][0])), "spec.links[4].import", "already linked"),
        (lambda d: d["spec"].update(components=[]), "spec.components", "non-empty"),
        (lambda d: d["spec"]["links"][0].update(idempotent="parse"), "spec.links[0].idempotent", "list"),
        (
            lambda d: d["spec"]["components"][4]["grants"].update(volumes=5),
            "spec.components[4].grants.volumes",
            "must be a list",
        ),
        (lambda d: d["spec"]["links"][0].update(idempotent=["Parse!"]), "spec.links[0].idempotent", "function"),
        (lambda d: d["spec"].update(pullSecrets=["Registry"]), "spec.pullSecrets[0]", "DNS label"),
        (lambda d: d["spec"].update(pullSecrets="registry"), "spec.pullSecrets", "list"),
        (lambda d: d["spec"].update(rollout={"prefetch": 1}), "spec.rollout.prefetch", "true or false"),
        (lambda d: d["spec"].update(rollout={"prefetchTimeout": "2d"}), "spec.rollout.prefetchTimeout", "duration"),
    ],
)
def test_errors_name_the_field(mutate, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    doc = _doc()
    mutate(doc)
    with pytest.raises(InvalidManifest) as err:
        manifest.parse(doc)
    assert err.value.field == field
    assert words in err.value.message


def test_cycles_are_refused() -> None:
    doc = _doc()
    doc["spec"]["links"].append({"importer": "parser", "import": "a:b/c", "exporter": "processor"})
    with pytest.raises(InvalidManifest, match="cycle: parser -> processor -> parser|cycle: processor -> parser"):
        manifest.parse(doc)


def test_bad_yaml_says_where() -> None:
    with pytest.raises(InvalidManifest, match="not valid YAML at line 3, column 1"):
        manifest.load("metadata:\n  name: [unclosed\n")
    with pytest.raises(InvalidManifest, match="must be a mapping"):
        manifest.load("- a list\n")


def _web(**http: object) -> dict:
    return {"name": "web", "artifact": DIGEST, "http": http}


def test_http_settings_parse_and_round_trip() -> None:
    doc = _doc()
    doc["spec"]["components"].append(
        _web(routes=["/web", "/web/:id", "ex.io/..."], instances="reuse", maxBodySize="2Mi", requestTimeout="5s")
    )
    doc["spec"]["components"][1]["grants"] = {"allowedOutboundHosts": ["https://api.example.com"]}
    spec = manifest.parse(doc)
    web = spec.component("web").http
    assert web.routes == ("/web", "/web/:id", "ex.io/...") and web.instances == "reuse"
    assert web.max_body_bytes == 2 << 20 and web.request_timeout == 5.0
    assert spec.component("ingestor").grants.outbound_hosts == ("https://api.example.com",)
    assert manifest.load(spec.to_yaml()) == spec


@pytest.mark.parametrize(
    ("http", "field", "words"),
    [
        ({"routes": []}, "spec.components[5].http.routes", "at least one"),
        ({"routes": ["nope"]}, "spec.components[5].http.routes[0]", "must start with '/'"),
        ({"routes": ["/a", "/a"]}, "spec.components[5].http.routes[1]", "overlaps spec.components[5].http.routes[0]"),
        ({"routes": ["/a"], "instances": "pooled"}, "spec.components[5].http.instances", "fresh, reuse"),
        ({"routes": ["/a"], "maxConcurrent": 0}, "spec.components[5].http.maxConcurrent", "1 to 10000"),
        ({"routes": ["/a"], "maxBodySize": "2Gi"}, "spec.components[5].http.maxBodySize", "between"),
        (
            {"routes": ["/a"], "firstByteTimeout": "10s", "requestTimeout": "1s"},
            "spec.components[5].http.firstByteTimeout",
            "longer than",
        ),
        ({"routes": ["/a"], "port": 80}, "spec.components[5].http.port", "unknown field"),
    ],
)
def test_http_errors_name_the_field(http: dict, field: str, words: str) -> None:
    doc = _doc()
    doc["spec"]["components"].append(_web(**http))
    with pytest.raises(InvalidManifest) as err:
        manifest.parse(doc)
    assert err.value.field == field and words in err.value.message, err.value.message


def test_two_components_of_one_application_cannot_claim_one_route() -> None:
    doc = _doc()
    doc["spec"]["components"] += [_web(routes=["/api/..."]), {**_web(routes=["/api/..."]), "name": "web2"}]
    with pytest.raises(InvalidManifest) as err:
        manifest.parse(doc)
    assert err.value.field == "spec.components[6].http.routes[0]"
    assert "(web2) overlaps spec.components[5].http.routes[0] /api/... (web)" in err.value.message


def test_http_components_get_no_volumes_and_sockets_stay_refused() -> None:
    doc = _doc()
    doc["spec"]["components"].append({**_web(routes=["/a"]), "grants": {"volumes": [{"name": "v", "path": "/v"}]}})
    with pytest.raises(InvalidManifest, match="cannot be granted volumes") as err:
        manifest.parse(doc)
    assert err.value.field == "spec.components[5].grants.volumes"
    doc = _doc()
    doc["spec"]["components"][1]["grants"] = {"network": True}
    with pytest.raises(InvalidManifest, match="allowedOutboundHosts"):
        manifest.parse(doc)
