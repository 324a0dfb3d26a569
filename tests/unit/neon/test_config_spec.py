"""The manifest's config and secrets: values and secret references parsed, round-tripped, and every error naming
its field."""

from __future__ import annotations

from typing import Any

import pytest

from neon import manifest
from neon.config_spec import ConfigSpec, SecretRef
from neon.errors import InvalidManifest

DIGEST = "sha256:" + "ab" * 32


def _doc(config: Any = None, secrets: Any = None) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": "archiver", "artifact": DIGEST}
    if config is not None:
        comp["config"] = config
    if secrets is not None:
        comp["secrets"] = secrets
    return {
        "apiVersion": manifest.API_VERSION,
        "kind": "Application",
        "metadata": {"name": "demo"},
        "spec": {"components": [comp]},
    }


def test_values_and_secret_references_parse_and_round_trip() -> None:
    spec = manifest.parse(
        _doc(
            {"retention": "500", "api.token": {"valueFrom": {"secret": "creds", "key": "token"}}, "mode": "fast"},
            {"persist": True},
        )
    )
    config = spec.component("archiver").config
    assert config == ConfigSpec(
        values=(("mode", "fast"), ("retention", "500")),
        secrets=(SecretRef("api.token", "creds", "token"),),
        persist_secrets=True,
    )
    assert config.secret_names() == ("creds",) and config.keys() == ("api.token", "mode", "retention")
    assert manifest.load(spec.to_yaml()) == spec
    assert manifest.parse(_doc()).component("archiver").config.empty


@pytest.mark.parametrize(
    ("config", "secrets", "field", "words"),
    [
        (["a"], None, "spec.components[0].config", "mapping of key to value"),
        ({"bad key": "v"}, None, "spec.components[0].config.bad key", "is not a config key"),
        ({"n": 5}, None, "spec.components[0].config.n", "must be a string (quote numbers"),
        ({"big": "x" * 65537}, None, "spec.components[0].config.big", "at most 65536"),
        ({"t": {"from": "x"}}, None, "spec.components[0].config.t.from", "unknown field"),
        (
            {"t": {"valueFrom": {"secret": "Creds", "key": "k"}}},
            None,
            "spec.components[0].config.t.valueFrom.secret",
            "DNS label",
        ),
        ({"t": {"valueFrom": {"secret": "creds"}}}, None, "spec.components[0].config.t.valueFrom.key", "missing"),
        (
            {"t": {"valueFrom": {"secret": "creds", "key": "a b"}}},
            None,
            "spec.components[0].config.t.valueFrom.key",
            "is not a secret's key",
        ),
        ({f"k{i}": "v" for i in range(257)}, None, "spec.components[0].config", "257 keys"),
        ({}, {"persist": "yes"}, "spec.components[0].secrets.persist", "true or false"),
        ({}, {"keep": True}, "spec.components[0].secrets.keep", "unknown field"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: Any, secrets: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidManifest) as err:
        manifest.parse(_doc(config, secrets))
    assert err.value.field == field
    assert words in err.value.message
