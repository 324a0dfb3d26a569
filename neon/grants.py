"""A component's ``grants``, the capabilities it is given (nothing else is visible to it):
the types and their parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from neon._validate import INTERFACE, dns_name, list_field, mapping
from neon.errors import InvalidManifest
from neon.outbound_hosts import parse_host_pattern


@dataclass(frozen=True)
class VolumeGrant:
    """A per-application directory on the agent, preopened in the guest at ``path``."""

    name: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class GrantSpec:
    """Capabilities granted to a component; nothing else is visible to it."""

    env: dict[str, str] = field(default_factory=dict)
    volumes: tuple[VolumeGrant, ...] = ()
    # The imported interfaces the component may call; None: every linked one. An import left out
    # needs no link and is absent at runtime: calling it traps, kills the instance and is reported.
    interfaces: tuple[str, ...] | None = None
    # Where outbound HTTP (wasi:http/outgoing-handler) may go, Spin's patterns; empty: nowhere.
    outbound_hosts: tuple[str, ...] = ()
    # The application's key-value buckets it may open through wasi:keyvalue; empty: none.
    key_value: tuple[str, ...] = ()


def grants_to_dict(grants: GrantSpec) -> dict[str, Any]:
    return (
        {
            "env": dict(grants.env),
            "volumes": [{"name": v.name, "path": v.path, "readOnly": v.read_only} for v in grants.volumes],
        }
        | ({"interfaces": list(grants.interfaces)} if grants.interfaces is not None else {})
        | ({"allowedOutboundHosts": list(grants.outbound_hosts)} if grants.outbound_hosts else {})
        | ({"keyValue": list(grants.key_value)} if grants.key_value else {})
    )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GUEST_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")


def parse_grants(doc: Any, path: str) -> GrantSpec:
    if isinstance(doc, dict) and "network" in doc:
        raise InvalidManifest(
            f"{path}.network: raw sockets cannot be granted: this agent's wasmtime offers no way to limit which "
            "hosts a socket reaches. Grant outbound HTTP to named hosts with allowedOutboundHosts "
            "(['https://api.example.com']), or call other components through links",
            field=f"{path}.network",
        )
    gr = mapping(doc, path, optional={"env", "volumes", "interfaces", "allowedOutboundHosts", "keyValue"})
    key_value = [dns_name(b, f"{path}.keyValue[{i}]") for i, b in enumerate(list_field(gr, "keyValue", path))]
    outbound = [
        parse_host_pattern(text, f"{path}.allowedOutboundHosts[{i}]").text
        for i, text in enumerate(list_field(gr, "allowedOutboundHosts", path))
    ]
    interfaces = None
    if "interfaces" in gr:
        interfaces = list_field(gr, "interfaces", path)
        for i, iface in enumerate(interfaces):
            if not isinstance(iface, str) or not INTERFACE.match(iface):
                raise InvalidManifest(
                    f"{path}.interfaces[{i}] must be a WIT interface like 'cyber-systems:logs/parser@0.1.0', "
                    f"got {iface!r}",
                    field=f"{path}.interfaces[{i}]",
                )
    env = gr.get("env") or {}
    if not isinstance(env, dict):
        raise InvalidManifest(f"{path}.env must be a mapping of name to value", field=f"{path}.env")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise InvalidManifest(f"{path}.env: {key!r} is not a valid variable name", field=f"{path}.env.{key}")
        if not isinstance(value, str):
            raise InvalidManifest(f"{path}.env.{key} must be a string (quote it)", field=f"{path}.env.{key}")
    volumes = []
    seen: set[str] = set()
    for i, item in enumerate(list_field(gr, "volumes", path)):
        vpath = f"{path}.volumes[{i}]"
        vol = mapping(item, vpath, required={"name", "path"}, optional={"readOnly"})
        name = dns_name(vol["name"], f"{vpath}.name")
        guest = vol["path"]
        if not isinstance(guest, str) or not _GUEST_PATH.match(guest) or ".." in guest.split("/"):
            raise InvalidManifest(
                f"{vpath}.path must be an absolute guest path without '..', got {guest!r}", field=f"{vpath}.path"
            )
        if guest in seen:
            raise InvalidManifest(f"{vpath}.path {guest} is mounted twice", field=f"{vpath}.path")
        seen.add(guest)
        read_only = vol.get("readOnly", False)
        if not isinstance(read_only, bool):
            raise InvalidManifest(f"{vpath}.readOnly must be true or false", field=f"{vpath}.readOnly")
        volumes.append(VolumeGrant(name=name, path=guest, read_only=read_only))
    return GrantSpec(
        env=dict(env),
        volumes=tuple(volumes),
        interfaces=tuple(sorted(set(interfaces))) if interfaces is not None else None,
        outbound_hosts=tuple(dict.fromkeys(outbound)),
        key_value=tuple(sorted(set(key_value))),
    )
