"""A component's configuration (the manifest's ``config`` and ``secrets``): values it reads through
``wasi:config/store``, each given in the manifest or taken from a key of a secret.

    config:
      retention: "500"
      api-token:
        valueFrom: {secret: archive-creds, key: token}
    secrets: {persist: true}   # an agent restarted without the control plane keeps the secret's values

The values are plain; a secret's value never is in the manifest, an assignment or ``desired.json``: only its
reference (and the version of the secret, so a changed secret is a new rollout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from neon._validate import dns_name, join, mapping
from neon.errors import InvalidManifest

KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")  # a config key, and a secret's key (Kubernetes' rule)
# A secret's key, as Kubernetes allows it: also starting with '.' or '-' (``.dockerconfigjson``), but not . or ..
SECRET_KEY = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,253}$")
MAX_KEYS = 256
MAX_VALUE = 64 * 1024  # bytes of one value (a secret's too)


@dataclass(frozen=True)
class SecretRef:
    """Config ``key`` takes its value from ``secret``'s ``secret_key``."""

    key: str
    secret: str
    secret_key: str


@dataclass(frozen=True)
class ConfigSpec:
    """What ``wasi:config/store`` gives one component."""

    values: tuple[tuple[str, str], ...] = ()  # sorted by key
    secrets: tuple[SecretRef, ...] = ()  # sorted by key
    persist_secrets: bool = False

    @property
    def empty(self) -> bool:
        return not self.values and not self.secrets

    def secret_names(self) -> tuple[str, ...]:
        return tuple(sorted({ref.secret for ref in self.secrets}))

    def keys(self) -> tuple[str, ...]:
        return tuple(sorted([k for k, _ in self.values] + [ref.key for ref in self.secrets]))


def check_key(key: Any, path: str, what: str = "a config key") -> str:
    secret = what == "a secret's key"
    if not isinstance(key, str) or not (SECRET_KEY if secret else KEY).match(key):
        rule = "not . or .." if secret else "not starting with '.' or '-'"
        raise InvalidManifest(
            f"{path}: {key!r} is not {what} (letters, digits, '_', '.', '-', at most 253 characters, {rule})",
            field=path,
        )
    return key


def check_value(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidManifest(
            f"{path} must be a string (quote numbers and booleans) or valueFrom: {{secret: NAME, key: KEY}}, "
            f"got {type(value).__name__}",
            field=path,
        )
    if len(value.encode()) > MAX_VALUE:
        raise InvalidManifest(
            f"{path} is {len(value.encode())} bytes; a config value may be at most {MAX_VALUE}", field=path
        )
    return value


def parse_config(config_doc: Any, secrets_doc: Any, path: str) -> ConfigSpec:
    """The component's ``config`` mapping and ``secrets`` policy (``path``: the component's)."""
    where = join(path, "config")
    doc = config_doc if config_doc is not None else {}
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{where} must be a mapping of key to value", field=where)
    if len(doc) > MAX_KEYS:
        raise InvalidManifest(f"{where} has {len(doc)} keys; the limit is {MAX_KEYS}", field=where)
    values: list[tuple[str, str]] = []
    refs: list[SecretRef] = []
    for key, value in doc.items():
        field = join(where, str(key))
        check_key(key, field)
        if isinstance(value, dict):
            source = mapping(value, field, required={"valueFrom"})
            ref = mapping(source["valueFrom"], f"{field}.valueFrom", required={"secret", "key"})
            secret = dns_name(ref["secret"], f"{field}.valueFrom.secret")
            refs.append(SecretRef(key, secret, check_key(ref["key"], f"{field}.valueFrom.key", "a secret's key")))
        else:
            values.append((key, check_value(value, field)))
    persist = False
    if secrets_doc is not None:
        policy = mapping(secrets_doc, join(path, "secrets"), optional={"persist"})
        persist = policy.get("persist", False)
        if not isinstance(persist, bool):
            raise InvalidManifest(
                f"{join(path, 'secrets.persist')} must be true or false", field=join(path, "secrets.persist")
            )
    return ConfigSpec(tuple(sorted(values)), tuple(sorted(refs, key=lambda r: r.key)), persist)


def config_to_dict(spec: ConfigSpec) -> dict[str, Any]:
    """The component's ``config`` entry (and ``secrets``), as the manifest writes them; empty when unset."""
    doc: dict[str, Any] = {}
    if not spec.empty:
        config: dict[str, Any] = dict(spec.values)
        for ref in spec.secrets:
            config[ref.key] = {"valueFrom": {"secret": ref.secret, "key": ref.secret_key}}
        doc["config"] = dict(sorted(config.items()))
    if spec.persist_secrets:
        doc["secrets"] = {"persist": True}
    return doc


def config_from_dict(doc: dict[str, Any]) -> ConfigSpec:
    """Inverse of :func:`config_to_dict` (of stored documents, already validated)."""
    return parse_config(doc.get("config"), doc.get("secrets"), "")
