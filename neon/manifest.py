"""Application manifests: YAML in, validated frozen dataclasses out.

A manifest is one YAML document per application::

    apiVersion: neon-grid.dev/v1
    kind: Application
    metadata:
      name: log-analyzer
    spec:
      components:
        - name: parser
          artifact: sha256:<hex>      # or a path, resolved and uploaded by the CLI
          replicas: 1
          placement:
            nodeSelector: {tier: edge}
      links:
        - importer: processor
          import: cyber-systems:logs/parser@0.1.0
          exporter: parser

Every error is an :class:`~neon.errors.InvalidManifest` whose ``field`` is the
dotted path of the offending field (``spec.components[1].replicas``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import yaml

from neon.errors import InvalidManifest

API_VERSION = "neon-grid.dev/v1"
KIND = "Application"
MAX_REPLICAS = 1000

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# namespace:package/interface[@semver]
_INTERFACE = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)+(@[0-9A-Za-z.+-]+)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class PlacementSpec:
    """Where a component may run."""

    node_selector: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentSpec:
    """One component of an application."""

    name: str
    artifact: str
    replicas: int = 1
    placement: PlacementSpec = field(default_factory=PlacementSpec)


@dataclass(frozen=True)
class LinkSpec:
    """The importer's WIT import is satisfied by the exporter component."""

    importer: str
    import_name: str
    exporter: str


@dataclass(frozen=True)
class AppSpec:
    """A validated application."""

    name: str
    components: tuple[ComponentSpec, ...]
    links: tuple[LinkSpec, ...] = ()

    def component(self, name: str) -> ComponentSpec:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    def links_from(self, importer: str) -> list[LinkSpec]:
        return [link for link in self.links if link.importer == importer]

    def with_artifacts(self, resolve: Callable[[ComponentSpec], str]) -> AppSpec:
        """A copy whose artifacts are replaced by ``resolve(component)``."""
        return replace(self, components=tuple(replace(c, artifact=resolve(c)) for c in self.components))

    def to_dict(self) -> dict[str, Any]:
        """The manifest document for this spec (round-trips through :func:`parse`)."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name},
            "spec": {
                "components": [
                    {
                        "name": c.name,
                        "artifact": c.artifact,
                        "replicas": c.replicas,
                        "placement": {"nodeSelector": dict(c.placement.node_selector)},
                    }
                    for c in self.components
                ],
                "links": [
                    {"importer": ln.importer, "import": ln.import_name, "exporter": ln.exporter} for ln in self.links
                ],
            },
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def is_digest(text: str) -> bool:
    """True for a content address ``sha256:<64 hex>``."""
    return bool(_DIGEST.match(text))


def load(text: str, *, require_digests: bool = True) -> AppSpec:
    """Parse and validate a manifest from YAML text.

    Args:
        text: The YAML document.
        require_digests: Refuse artifacts that are not ``sha256:`` digests
            (the control plane's view); the CLI passes False to allow paths.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidManifest(f"manifest is not valid YAML{where}: {getattr(err, 'problem', err)}", field="") from None
    return parse(doc, require_digests=require_digests)


def parse(doc: Any, *, require_digests: bool = True) -> AppSpec:
    """Validate a manifest document already decoded from YAML or JSON."""
    top = _mapping(doc, "", required={"apiVersion", "kind", "metadata", "spec"})
    if top["apiVersion"] != API_VERSION:
        raise InvalidManifest(f"apiVersion must be {API_VERSION!r}, got {top['apiVersion']!r}", field="apiVersion")
    if top["kind"] != KIND:
        raise InvalidManifest(f"kind must be {KIND!r}, got {top['kind']!r}", field="kind")
    meta = _mapping(top["metadata"], "metadata", required={"name"}, optional={"labels"})
    name = _name(meta["name"], "metadata.name")
    spec = _mapping(top["spec"], "spec", required={"components"}, optional={"links"})

    comps_doc = spec["components"]
    if not isinstance(comps_doc, list) or not comps_doc:
        raise InvalidManifest("spec.components must be a non-empty list", field="spec.components")
    components: list[ComponentSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(comps_doc):
        comp = _component(item, f"spec.components[{i}]", require_digests)
        if comp.name in seen:
            raise InvalidManifest(
                f"component name {comp.name!r} is used twice (spec.components[{seen[comp.name]}] and [{i}])",
                field=f"spec.components[{i}].name",
            )
        seen[comp.name] = i
        components.append(comp)

    links_doc = spec.get("links") or []
    if not isinstance(links_doc, list):
        raise InvalidManifest("spec.links must be a list", field="spec.links")
    links: list[LinkSpec] = []
    bound: set[tuple[str, str]] = set()
    for i, item in enumerate(links_doc):
        path = f"spec.links[{i}]"
        link_doc = _mapping(item, path, required={"importer", "import", "exporter"})
        importer = _name(link_doc["importer"], f"{path}.importer")
        exporter = _name(link_doc["exporter"], f"{path}.exporter")
        for role, comp_name in (("importer", importer), ("exporter", exporter)):
            if comp_name not in seen:
                raise InvalidManifest(
                    f"{path}.{role} names {comp_name!r}, which is not a component of this application "
                    f"(components: {', '.join(sorted(seen))})",
                    field=f"{path}.{role}",
                )
        if importer == exporter:
            raise InvalidManifest(f"{path}: a component cannot satisfy its own import", field=f"{path}.exporter")
        import_name = link_doc["import"]
        if not isinstance(import_name, str) or not _INTERFACE.match(import_name):
            raise InvalidManifest(
                f"{path}.import must be a WIT interface like 'cyber-systems:logs/parser@0.1.0', got {import_name!r}",
                field=f"{path}.import",
            )
        if (importer, import_name) in bound:
            raise InvalidManifest(
                f"{path}: {importer}'s import {import_name} is already linked", field=f"{path}.import"
            )
        bound.add((importer, import_name))
        links.append(LinkSpec(importer=importer, import_name=import_name, exporter=exporter))
    _refuse_cycles(links)
    return AppSpec(name=name, components=tuple(components), links=tuple(links))


def _component(item: Any, path: str, require_digests: bool) -> ComponentSpec:
    doc = _mapping(item, path, required={"name", "artifact"}, optional={"replicas", "placement"})
    name = _name(doc["name"], f"{path}.name")
    artifact = doc["artifact"]
    if not isinstance(artifact, str) or not artifact:
        raise InvalidManifest(f"{path}.artifact must be a sha256 digest or a file path", field=f"{path}.artifact")
    if require_digests and not is_digest(artifact):
        raise InvalidManifest(
            f"{path}.artifact must be 'sha256:<64 hex digits>' (upload the file first; `neon apply` does it), "
            f"got {artifact!r}",
            field=f"{path}.artifact",
        )
    replicas = doc.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidManifest(
            f"{path}.replicas must be an integer from 1 to {MAX_REPLICAS}, got {replicas!r}", field=f"{path}.replicas"
        )
    placement = PlacementSpec()
    if doc.get("placement") is not None:
        pdoc = _mapping(doc["placement"], f"{path}.placement", optional={"nodeSelector"})
        selector = pdoc.get("nodeSelector") or {}
        sel_path = f"{path}.placement.nodeSelector"
        if not isinstance(selector, dict):
            raise InvalidManifest(f"{sel_path} must be a mapping of label to value", field=sel_path)
        for key, value in selector.items():
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                raise InvalidManifest(f"{sel_path}: {key!r} is not a valid label key", field=f"{sel_path}.{key}")
            if not isinstance(value, str) or not _LABEL_VALUE.match(value):
                raise InvalidManifest(
                    f"{sel_path}.{key} must be a label value string (quote numbers and booleans), got {value!r}",
                    field=f"{sel_path}.{key}",
                )
        placement = PlacementSpec(node_selector=dict(selector))
    return ComponentSpec(name=name, artifact=artifact, replicas=replicas, placement=placement)


def _refuse_cycles(links: list[LinkSpec]) -> None:
    graph: dict[str, list[str]] = {}
    for link in links:
        graph.setdefault(link.importer, []).append(link.exporter)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = " -> ".join([*trail[trail.index(nxt) :], nxt]) if nxt in trail else f"{node} -> {nxt}"
                raise InvalidManifest(f"spec.links form a cycle: {cycle}", field="spec.links")
            if not state.get(nxt):
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if not state.get(start):
            visit(start, [start])


def _mapping(
    doc: Any,
    path: str,
    *,
    required: frozenset[str] | set[str] = frozenset(),
    optional: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    where = path or "the manifest"
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{where} must be a mapping, got {type(doc).__name__}", field=path)
    for key in doc:
        if key not in required and key not in optional:
            allowed = ", ".join(sorted(required | optional))
            raise InvalidManifest(
                f"unknown field {_join(path, str(key))!r} (allowed here: {allowed})", field=_join(path, str(key))
            )
    for key in sorted(required):
        if key not in doc or doc[key] is None:
            raise InvalidManifest(f"missing required field {_join(path, key)!r}", field=_join(path, key))
    return doc


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidManifest(
            f"{path} must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters), got {value!r}", field=path
        )
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
