"""Application manifests: YAML in, validated frozen dataclasses out.

A manifest is one YAML document per application::

    apiVersion: neon-grid.dev/v1
    kind: Application
    metadata:
      name: log-analyzer
    spec:
      components:
        - name: parser
          artifact: sha256:<hex>      # or a path (uploaded by the CLI), or oci://REGISTRY/REPO:TAG (pulled at apply)
          replicas: 1
          placement:
            nodeSelector: {tier: edge}
          runtime:                    # all optional
            mode: pooled              # or per-call: a fresh instance per call
            instances: 2              # warm instances (pooled) or concurrent calls (per-call)
            maxQueue: 64              # calls that may wait for an instance; more are refused
            memory: 64Mi              # linear memory per instance
            timeout: 5s               # per-call deadline
          config:                     # what the guest reads through wasi:config/store
            retention: "500"
            token: {valueFrom: {secret: archive-creds, key: token}}   # `neon secret create`
          secrets: {persist: true}    # optional: an agent restarted offline keeps the secret's values
          grants:                     # nothing else is visible to the guest
            env: {LOG_FORMAT: rfc3339}
            volumes:
              - {name: spool, path: /spool, readOnly: false}
      links:
        - importer: processor
          import: cyber-systems:logs/parser@0.1.0
          exporter: parser
          # colocate: required | preferred | never; latencyBudget: 20ms
          # fuse: false  keeps a co-located pair as two instances (a host call)
          # idempotent: [parse]  (or ["*"]) may be retried on another replica when one is down

Every error is an :class:`~neon.errors.InvalidManifest` whose ``field`` is the
dotted path of the offending field (``spec.components[1].replicas``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import yaml

from neon._validate import INTERFACE, dns_name, list_field, mapping, parse_duration
from neon.bucket_spec import BucketSpec, buckets_to_list, parse_buckets
from neon.config_spec import ConfigSpec, config_to_dict, parse_config
from neon.errors import InvalidArgument, InvalidManifest
from neon.grants import GrantSpec, grants_to_dict, parse_grants
from neon.http_spec import HttpSpec, http_to_dict, parse_http
from neon.oci import reference as oci
from neon.policy import COLOCATE, PlacementSpec, parse_placement
from neon.rollout_spec import RolloutSpec, parse_rollout
from neon.routes import Route, ambiguous, parse_route, url_prefix
from neon.runtime_spec import RuntimeSpec, parse_runtime, runtime_to_dict
from neon.security.signing import parse_public

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter when present
API_VERSION = "neon-grid.dev/v1"
KIND = "Application"
MAX_REPLICAS = 1000

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_MANIFEST = 1 << 20  # characters; an application's manifest is a few kilobytes
_FUNCTION = re.compile(r"^[a-z][a-z0-9-]*$")  # a WIT function name (kebab case)


@dataclass(frozen=True)
class ComponentSpec:
    """One component of an application."""

    name: str
    artifact: str
    replicas: int = 1
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    grants: GrantSpec = field(default_factory=GrantSpec)
    http: HttpSpec = field(default_factory=HttpSpec)  # routes served at the edge (none: not an HTTP component)
    config: ConfigSpec = field(default_factory=ConfigSpec)  # what wasi:config/store gives it


@dataclass(frozen=True)
class LinkSpec:
    """The importer's WIT import is satisfied by the exporter component.

    ``colocate``: ``required`` (same node, so the pair is fused), ``preferred``,
    ``never`` (always split), or None (placement decides by cost).
    ``latency_budget_ms``: the round trip a split call may cost at most.
    ``fuse``: whether the pair is composed into one component when co-located;
    ``False`` keeps two instances (own memory, limits and grants) joined by a
    host function.
    ``idempotent``: functions of the import that are safe to run twice, so a
    forwarded call that finds a replica down is retried on another (``*``: all).
    """

    importer: str
    import_name: str
    exporter: str
    colocate: str | None = None
    latency_budget_ms: float | None = None
    fuse: bool = True
    idempotent: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppSpec:
    """A validated application."""

    name: str
    components: tuple[ComponentSpec, ...]
    links: tuple[LinkSpec, ...] = ()
    trusted_keys: tuple[str, ...] = ()  # ed25519 publisher keys; empty: the cluster's trust policy
    buckets: tuple[BucketSpec, ...] = ()  # key-value buckets its components may be granted
    rollout: RolloutSpec = RolloutSpec()  # how new generations reach the nodes
    pull_secrets: tuple[str, ...] = ()  # secrets holding registry credentials for its oci:// artifacts

    def bucket(self, name: str) -> BucketSpec:
        for bucket in self.buckets:
            if bucket.name == name:
                return bucket
        raise KeyError(name)

    def component(self, name: str) -> ComponentSpec:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    def links_from(self, importer: str) -> list[LinkSpec]:
        return [link for link in self.links if link.importer == importer]

    def served_routes(
        self, running: Mapping[str, Sequence[str]], doors: Mapping[str, str]
    ) -> list[tuple[str, str, list[str], list[str]]]:
        """(route, component, the nodes ``running`` it, a URL on each of those with a front door in ``doors``)
        for every HTTP route; a wildcard's or a ``:name`` segment's URL is its fixed prefix."""
        out = []
        for comp in self.components:
            for route in comp.http.routes:
                nodes = list(running.get(comp.name, ()))
                out.append((route, comp.name, nodes, [doors[n] + url_prefix(route) for n in nodes if doors.get(n)]))
        return out

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
                        "placement": c.placement.to_dict(),
                        "runtime": runtime_to_dict(c.runtime),
                        "grants": grants_to_dict(c.grants),
                    }
                    | ({"http": http_to_dict(c.http)} if c.http.enabled else {})
                    | config_to_dict(c.config)
                    for c in self.components
                ],
                "links": [_link_doc(ln) for ln in self.links],
            }
            | ({"trustedKeys": list(self.trusted_keys)} if self.trusted_keys else {})
            | ({"buckets": buckets_to_list(self.buckets)} if self.buckets else {})
            | ({} if self.rollout.is_default else {"rollout": self.rollout.to_dict()})
            | ({"pullSecrets": list(self.pull_secrets)} if self.pull_secrets else {}),
        }

    def to_yaml(self) -> str:
        return self._yaml

    @functools.cached_property
    def _yaml(self) -> str:
        # Statuses carry it on every read: made once per spec, with libyaml's emitter when present.
        return yaml.dump(self.to_dict(), Dumper=_DUMPER, sort_keys=False)


def _link_doc(link: LinkSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"importer": link.importer, "import": link.import_name, "exporter": link.exporter}
    if link.colocate:
        doc["colocate"] = link.colocate
    if link.latency_budget_ms is not None:
        doc["latencyBudget"] = f"{link.latency_budget_ms:g}ms"
    if not link.fuse:
        doc["fuse"] = False
    if link.idempotent:
        doc["idempotent"] = list(link.idempotent)
    return doc


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
    if len(text) > MAX_MANIFEST:
        raise InvalidManifest(f"the manifest is {len(text)} characters; the limit is {MAX_MANIFEST}", field="")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidManifest(f"manifest is not valid YAML{where}: {getattr(err, 'problem', err)}", field="") from None
    except RecursionError:
        raise InvalidManifest("the manifest nests deeper than YAML decoding allows", field="") from None
    return parse(doc, require_digests=require_digests)


def parse(doc: Any, *, require_digests: bool = True) -> AppSpec:
    """Validate a manifest document already decoded from YAML or JSON."""
    top = mapping(doc, "", required={"apiVersion", "kind", "metadata", "spec"})
    if top["apiVersion"] != API_VERSION:
        raise InvalidManifest(f"apiVersion must be {API_VERSION!r}, got {top['apiVersion']!r}", field="apiVersion")
    if top["kind"] != KIND:
        raise InvalidManifest(f"kind must be {KIND!r}, got {top['kind']!r}", field="kind")
    meta = mapping(top["metadata"], "metadata", required={"name"}, optional={"labels"})
    name = dns_name(meta["name"], "metadata.name")
    spec = mapping(
        top["spec"],
        "spec",
        required={"components"},
        optional={"links", "trustedKeys", "buckets", "rollout", "pullSecrets"},
    )
    buckets = parse_buckets(spec.get("buckets"), "spec.buckets")
    rollout = parse_rollout(spec.get("rollout"), "spec.rollout")
    pull_secrets = [
        dns_name(s, f"spec.pullSecrets[{i}]") for i, s in enumerate(list_field(spec, "pullSecrets", "spec"))
    ]
    trusted = list_field(spec, "trustedKeys", "spec")
    for i, key in enumerate(trusted):
        try:
            parse_public(key if isinstance(key, str) else repr(key), f"spec.trustedKeys[{i}]")
        except InvalidArgument as err:
            raise InvalidManifest(err.message, field=f"spec.trustedKeys[{i}]") from None

    comps_doc = spec["components"]
    if not isinstance(comps_doc, list) or not comps_doc:
        raise InvalidManifest("spec.components must be a non-empty list", field="spec.components")
    components: list[ComponentSpec] = []
    seen: dict[str, int] = {}
    names = {c["name"] for c in comps_doc if isinstance(c, dict) and isinstance(c.get("name"), str)}
    for i, item in enumerate(comps_doc):
        comp = _component(item, f"spec.components[{i}]", require_digests, names)
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
        link_doc = mapping(
            item,
            path,
            required={"importer", "import", "exporter"},
            optional={"colocate", "latencyBudget", "fuse", "idempotent"},
        )
        importer = dns_name(link_doc["importer"], f"{path}.importer")
        exporter = dns_name(link_doc["exporter"], f"{path}.exporter")
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
        if not isinstance(import_name, str) or not INTERFACE.match(import_name):
            raise InvalidManifest(
                f"{path}.import must be a WIT interface like 'cyber-systems:logs/parser@0.1.0', got {import_name!r}",
                field=f"{path}.import",
            )
        if (importer, import_name) in bound:
            raise InvalidManifest(
                f"{path}: {importer}'s import {import_name} is already linked", field=f"{path}.import"
            )
        bound.add((importer, import_name))
        colocate = link_doc.get("colocate")
        if colocate is not None and colocate not in COLOCATE:
            raise InvalidManifest(
                f"{path}.colocate must be one of {', '.join(COLOCATE)}, got {colocate!r}", field=f"{path}.colocate"
            )
        fuse = link_doc.get("fuse", True)
        if not isinstance(fuse, bool):
            raise InvalidManifest(f"{path}.fuse must be true or false, got {fuse!r}", field=f"{path}.fuse")
        idempotent = link_doc.get("idempotent", [])
        if not isinstance(idempotent, list) or not all(
            isinstance(f, str) and (f == "*" or _FUNCTION.match(f)) for f in idempotent
        ):
            raise InvalidManifest(
                f'{path}.idempotent must be a list of the import\'s function names (or ["*"]), got {idempotent!r}',
                field=f"{path}.idempotent",
            )
        budget = None
        if link_doc.get("latencyBudget") is not None:
            budget = parse_duration(link_doc["latencyBudget"], f"{path}.latencyBudget") * 1000.0
        links.append(
            LinkSpec(
                importer=importer,
                import_name=import_name,
                exporter=exporter,
                colocate=colocate,
                latency_budget_ms=budget,
                fuse=fuse,
                idempotent=tuple(sorted(set(idempotent))),
            )
        )
    _refuse_cycles(links)
    _refuse_ambiguous_routes(components)
    _refuse_unknown_buckets(components, buckets)
    app = AppSpec(
        name=name,
        components=tuple(components),
        links=tuple(links),
        trusted_keys=tuple(dict.fromkeys(trusted)),
        buckets=buckets,
        rollout=rollout,
        pull_secrets=tuple(dict.fromkeys(pull_secrets)),
    )
    _refuse_impossible_links(app)
    return app


def _component(item: Any, path: str, require_digests: bool, names: set[str]) -> ComponentSpec:
    doc = mapping(
        item,
        path,
        required={"name", "artifact"},
        optional={"replicas", "placement", "runtime", "grants", "http", "config", "secrets"},
    )
    name = dns_name(doc["name"], f"{path}.name")
    artifact = doc["artifact"]
    if not isinstance(artifact, str) or not artifact:
        raise InvalidManifest(f"{path}.artifact must be a sha256 digest or a file path", field=f"{path}.artifact")
    if oci.is_oci(artifact):
        try:
            oci.parse(artifact, allow_latest=True, field=f"{path}.artifact")  # the tag's policy is apply's
        except InvalidArgument as err:
            raise InvalidManifest(err.message, field=f"{path}.artifact") from None
    elif require_digests and not is_digest(artifact):
        raise InvalidManifest(
            f"{path}.artifact must be 'sha256:<64 hex digits>' (upload the file first; `neon apply` does it) "
            f"or an OCI reference (oci://REGISTRY/REPOSITORY:TAG), got {artifact!r}",
            field=f"{path}.artifact",
        )
    replicas = doc.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidManifest(
            f"{path}.replicas must be an integer from 1 to {MAX_REPLICAS}, got {replicas!r}", field=f"{path}.replicas"
        )
    placement = PlacementSpec()
    if doc.get("placement") is not None:
        placement = parse_placement(doc["placement"], f"{path}.placement", names)
        if any(t.component == name for t in (*placement.affinity, *placement.anti_affinity)):
            raise InvalidManifest(
                f"{path}.placement: a component cannot have affinity to itself", field=f"{path}.placement"
            )
    runtime = parse_runtime(doc["runtime"], f"{path}.runtime") if doc.get("runtime") is not None else RuntimeSpec()
    grants = parse_grants(doc["grants"], f"{path}.grants") if doc.get("grants") is not None else GrantSpec()
    http = parse_http(doc["http"], f"{path}.http") if doc.get("http") is not None else HttpSpec()
    if http.enabled and grants.volumes:
        raise InvalidManifest(
            f"{path}.grants.volumes: an HTTP component cannot be granted volumes yet (the agent serves its WASI "
            "streams itself and has no filesystem behind them); keep files in a linked component",
            field=f"{path}.grants.volumes",
        )
    return ComponentSpec(
        name=name,
        artifact=artifact,
        replicas=replicas,
        placement=placement,
        runtime=runtime,
        grants=grants,
        http=http,
        config=parse_config(doc.get("config"), doc.get("secrets"), path),
    )


def _refuse_ambiguous_routes(components: list[ComponentSpec]) -> None:
    """Two components of one application whose routes a request could match alike."""
    seen: list[tuple[int, int, Route]] = []
    for c, comp in enumerate(components):
        for r, text in enumerate(comp.http.routes):
            route = parse_route(text, f"spec.components[{c}].http.routes[{r}]")
            for oc, orr, other in seen:
                if oc != c and ambiguous(other, route):
                    raise InvalidManifest(
                        f"spec.components[{c}].http.routes[{r}] {route} ({comp.name}) overlaps "
                        f"spec.components[{oc}].http.routes[{orr}] {other} ({components[oc].name})",
                        field=f"spec.components[{c}].http.routes[{r}]",
                    )
            seen.append((c, r, route))


def _refuse_unknown_buckets(components: list[ComponentSpec], buckets: tuple[BucketSpec, ...]) -> None:
    declared = {b.name for b in buckets}
    for c, comp in enumerate(components):
        for i, name in enumerate(comp.grants.key_value):
            if name not in declared:
                field = f"spec.components[{c}].grants.keyValue[{i}]"
                raise InvalidManifest(
                    f"{field}: bucket {name!r} is not declared; add it to spec.buckets "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})",
                    field=field,
                )


def _refuse_impossible_links(app: AppSpec) -> None:
    index = {c.name: i for i, c in enumerate(app.components)}
    for i, link in enumerate(app.links):
        path = f"spec.links[{i}].colocate"
        importer, exporter = app.component(link.importer), app.component(link.exporter)
        apart = {t.component for t in importer.placement.anti_affinity if t.required} | {
            t.component for t in exporter.placement.anti_affinity if t.required
        }
        together = {t.component for t in importer.placement.affinity if t.required} | {
            t.component for t in exporter.placement.affinity if t.required
        }
        if link.colocate == "required" and {link.importer, link.exporter} & apart:
            raise InvalidManifest(
                f"{path} is required, but spec.components[{index[link.importer]}] and "
                f"[{index[link.exporter]}] have a required anti-affinity between them",
                field=path,
            )
        if link.colocate == "never" and {link.importer, link.exporter} & together:
            raise InvalidManifest(
                f"{path} is never, but a required affinity puts {link.importer} and {link.exporter} together",
                field=path,
            )


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
