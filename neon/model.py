"""Domain objects shared by the control plane and the agents.

Plain frozen dataclasses with ``to_dict``/``from_dict`` for the JSON stored in
etcd; protobuf conversion lives at the gRPC edges (:mod:`neon.model_proto`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from neon.bucket_spec import BucketSpec
from neon.config_spec import ConfigSpec, config_from_dict, config_to_dict
from neon.grants import GrantSpec, VolumeGrant
from neon.http_spec import HttpSpec
from neon.runtime_spec import RuntimeSpec


@dataclass(frozen=True)
class NodeInfo:
    """A registered agent."""

    name: str
    labels: dict[str, str]
    dataplane_address: str
    memory_bytes: int = 0
    instance_slots: int = 0
    registered_at: float = 0.0
    version: str = ""
    lease_id: int = 0
    taints: tuple[str, ...] = ()  # "key=value:Effect"
    capabilities: tuple[str, ...] = ()
    metrics_address: str = ""
    http_url: str = ""  # the front door, where the node serves its HTTP components' routes

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["taints"] = list(self.taints)
        doc["capabilities"] = list(self.capabilities)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NodeInfo:
        return cls(
            **{**doc, "taints": tuple(doc.get("taints", ())), "capabilities": tuple(doc.get("capabilities", ()))}
        )


@dataclass(frozen=True)
class ImportBinding:
    """How one import of a component is satisfied on a node."""

    import_name: str
    component: str
    local: bool
    endpoints: tuple[str, ...] = ()
    idempotent: tuple[str, ...] = ()  # functions a forwarded call may retry on another replica ("*": all)
    importer: str = ""  # the member that imports it, inside a fused component ("": the component itself)

    def retries(self, function: str) -> bool:
        return "*" in self.idempotent or function in self.idempotent


@dataclass(frozen=True)
class ComponentAssignment:
    """A component a node must run, with its imports bound."""

    name: str
    artifact: str
    imports: tuple[ImportBinding, ...] = ()
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    grants: GrantSpec = field(default_factory=GrantSpec)
    fused_members: tuple[str, ...] = ()  # set on a fused component: what was composed into it
    # What the agent checks before compiling; in the shape, so a refused component is tried again once signed.
    signatures: tuple[str, ...] = ()  # JSON signature documents
    trusted_keys: tuple[str, ...] = ()  # publisher keys; "*": the control plane allows unsigned artifacts
    inputs: tuple[str, ...] = ()  # a fused artifact's input digests
    callers: tuple[str, ...] = ()  # nodes linked to it across nodes: whose forwarded calls it accepts
    http: HttpSpec = field(default_factory=HttpSpec)  # routes it serves at this node's front door
    source: str = ""  # the pinned oci:// reference it was pulled from (a node labelled to pull fetches it there)
    config: ConfigSpec = field(default_factory=ConfigSpec)  # what wasi:config/store gives it (secrets by reference)
    # (secret, version) of every secret its config takes a value from: a changed secret is a new rollout
    secret_versions: tuple[tuple[str, int], ...] = ()
    buckets: tuple[BucketSpec, ...] = ()  # the key-value buckets it is granted (grants.keyValue), as declared

    def shape(self) -> tuple[Any, ...]:
        """What requires a restart when it changes (not the remote endpoints)."""
        links = tuple(sorted((b.import_name, b.component, b.local, b.idempotent) for b in self.imports))
        grants = (
            tuple(sorted(self.grants.env.items())),
            self.grants.volumes,
            self.grants.interfaces,
            self.grants.outbound_hosts,
        )
        return (
            self.artifact,
            links,
            self.runtime,
            grants,
            self.signatures,
            self.trusted_keys,
            self.http,
            self.config,
            self.secret_versions,
            self.buckets,
        )


@dataclass(frozen=True)
class Assignment:
    """One application's slice of the graph on one node."""

    app: str
    generation: int
    components: tuple[ComponentAssignment, ...] = field(default_factory=tuple)
    # What the node will run at ``prefetch_generation``, to fetch and compile before the rollout swaps anything
    # (the control plane holds the new slices back until every node has it ready); since: when that began.
    prefetch: tuple[ComponentAssignment, ...] = ()
    prefetch_generation: int = 0
    prefetch_since: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "app": self.app,
            "generation": self.generation,
            "components": [_component_doc(c) for c in self.components],
        }
        if self.prefetch:
            doc["prefetch"] = {
                "generation": self.prefetch_generation,
                "since": self.prefetch_since,
                "components": [_component_doc(c) for c in self.prefetch],
            }
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Assignment:
        ahead = doc.get("prefetch") or {}
        return cls(
            app=doc["app"],
            generation=int(doc["generation"]),
            components=tuple(_component(c) for c in doc.get("components", ())),
            prefetch=tuple(_component(c) for c in ahead.get("components", ())),
            prefetch_generation=int(ahead.get("generation", 0)),
            prefetch_since=float(ahead.get("since", 0.0)),
        )


def _component_doc(c: ComponentAssignment) -> dict[str, Any]:
    return (
        {
            "name": c.name,
            "artifact": c.artifact,
            "imports": [
                {
                    "import": b.import_name,
                    "component": b.component,
                    "local": b.local,
                    "endpoints": list(b.endpoints),
                }
                | ({"idempotent": list(b.idempotent)} if b.idempotent else {})
                | ({"importer": b.importer} if b.importer else {})
                for b in c.imports
            ],
            "runtime": asdict(c.runtime),
            "grants": {"env": dict(c.grants.env), "volumes": [asdict(v) for v in c.grants.volumes]}
            | ({"interfaces": list(c.grants.interfaces)} if c.grants.interfaces is not None else {})
            | ({"outbound_hosts": list(c.grants.outbound_hosts)} if c.grants.outbound_hosts else {}),
            "fused_members": list(c.fused_members),
            "signatures": list(c.signatures),
            "trusted_keys": list(c.trusted_keys),
            "inputs": list(c.inputs),
        }
        | ({"callers": list(c.callers)} if c.callers else {})
        | ({"http": asdict(c.http)} if c.http.enabled else {})
        | ({"source": c.source} if c.source else {})
        | config_to_dict(c.config)
        | ({"secret_versions": dict(c.secret_versions)} if c.secret_versions else {})
        | ({"buckets": [asdict(b) for b in c.buckets]} if c.buckets else {})
    )


def _component(c: dict[str, Any]) -> ComponentAssignment:
    return ComponentAssignment(
        name=c["name"],
        artifact=c["artifact"],
        imports=tuple(
            ImportBinding(
                import_name=b["import"],
                component=b["component"],
                local=bool(b["local"]),
                endpoints=tuple(b.get("endpoints", ())),
                idempotent=tuple(b.get("idempotent", ())),
                importer=b.get("importer", ""),
            )
            for b in c.get("imports", ())
        ),
        runtime=RuntimeSpec(**c["runtime"]) if "runtime" in c else RuntimeSpec(),
        grants=GrantSpec(
            env=dict(c.get("grants", {}).get("env", {})),
            volumes=tuple(VolumeGrant(**v) for v in c.get("grants", {}).get("volumes", ())),
            interfaces=(tuple(c["grants"]["interfaces"]) if "interfaces" in c.get("grants", {}) else None),
            outbound_hosts=tuple(c.get("grants", {}).get("outbound_hosts", ())),
        ),
        fused_members=tuple(c.get("fused_members", ())),
        signatures=tuple(c.get("signatures", ())),
        trusted_keys=tuple(c.get("trusted_keys", ())),
        inputs=tuple(c.get("inputs", ())),
        callers=tuple(c.get("callers", ())),
        http=_http(c["http"]) if "http" in c else HttpSpec(),
        source=c.get("source", ""),
        config=config_from_dict(c),
        secret_versions=tuple(sorted((k, int(v)) for k, v in c.get("secret_versions", {}).items())),
        buckets=tuple(BucketSpec(**b) for b in c.get("buckets", ())),
    )


@dataclass(frozen=True)
class InstanceReport:
    """What an agent says about one of its instances."""

    app: str
    component: str
    artifact: str
    state: str  # Starting, Running, Failed
    reason: str = ""
    generation: int = 0
    denials: int = 0  # calls to capabilities not granted (each killed its instance)
    last_denial: str = ""
    since: float = 0.0  # when state, artifact or reason last changed (the agent's clock)
    traps: int = 0  # calls that trapped (each discarded its instance)
    last_trap: str = ""
    last_trap_id: str = ""  # the incident id the agent's log line carries
    config_misses: int = 0  # asks through wasi:config/store for keys its config does not give
    missed_config: str = ""  # those keys, comma-separated (the first 20)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> InstanceReport:
        return cls(**doc)


@dataclass(frozen=True)
class Event:
    """Something that happened, for `neon events`."""

    id: str
    time: float
    kind: str
    message: str
    app: str = ""
    component: str = ""
    node: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Event:
        return cls(**doc)


def _http(doc: dict[str, Any]) -> HttpSpec:
    return HttpSpec(**{**doc, "routes": tuple(doc.get("routes", ()))})
