"""Protobuf <-> domain conversion, used only by servicers and clients."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format

from neon._proto import control_pb2
from neon.bucket_spec import BucketSpec
from neon.config_spec import ConfigSpec, SecretRef
from neon.grants import GrantSpec, VolumeGrant
from neon.http_spec import HttpSpec
from neon.model import Assignment, ComponentAssignment, Event, ImportBinding, InstanceReport, NodeInfo
from neon.runtime_spec import RuntimeSpec


def assignment_to_proto(a: Assignment) -> control_pb2.Assignment:
    return control_pb2.Assignment(
        app=a.app,
        generation=a.generation,
        components=[component_to_proto(c) for c in a.components],
        prefetch=[component_to_proto(c) for c in a.prefetch],
        prefetch_generation=a.prefetch_generation,
        prefetch_since=a.prefetch_since,
    )


def component_to_proto(c: ComponentAssignment) -> control_pb2.ComponentAssignment:
    return control_pb2.ComponentAssignment(
        name=c.name,
        artifact=c.artifact,
        imports=[
            control_pb2.ImportBinding(
                **{"import": b.import_name},
                component=b.component,
                local=b.local,
                endpoints=list(b.endpoints),
                idempotent=list(b.idempotent),
                importer=b.importer,
            )
            for b in c.imports
        ],
        runtime=control_pb2.RuntimeSettings(
            mode=c.runtime.mode,
            instances=c.runtime.instances,
            max_queue=c.runtime.max_queue,
            memory_bytes=c.runtime.memory_bytes,
            timeout_seconds=c.runtime.timeout_seconds,
        ),
        grants=control_pb2.Grants(
            env=c.grants.env,
            volumes=[
                control_pb2.VolumeGrant(name=v.name, path=v.path, read_only=v.read_only) for v in c.grants.volumes
            ],
            limit_interfaces=c.grants.interfaces is not None,
            interfaces=list(c.grants.interfaces or ()),
            allowed_outbound_hosts=list(c.grants.outbound_hosts),
        ),
        fused_members=list(c.fused_members),
        signatures=list(c.signatures),
        trusted_keys=list(c.trusted_keys),
        inputs=list(c.inputs),
        callers=list(c.callers),
        http=_http_to_proto(c.http) if c.http.enabled else None,
        source=c.source,
        config=_config_to_proto(c.config, c.secret_versions) if not c.config.empty else None,
        buckets=[
            control_pb2.Bucket(name=b.name, backend=b.backend, max_value_bytes=b.max_value_bytes, max_bytes=b.max_bytes)
            for b in c.buckets
        ],
    )


def _config_to_proto(spec: ConfigSpec, versions: tuple[tuple[str, int], ...]) -> control_pb2.ConfigSettings:
    return control_pb2.ConfigSettings(
        values=dict(spec.values),
        secrets=[control_pb2.SecretRef(key=r.key, secret=r.secret, secret_key=r.secret_key) for r in spec.secrets],
        persist_secrets=spec.persist_secrets,
        secret_versions=dict(versions),
    )


def _config_from_proto(m: control_pb2.ConfigSettings) -> ConfigSpec:
    return ConfigSpec(
        values=tuple(sorted(m.values.items())),
        secrets=tuple(sorted((SecretRef(r.key, r.secret, r.secret_key) for r in m.secrets), key=lambda r: r.key)),
        persist_secrets=m.persist_secrets,
    )


def _http_to_proto(h: HttpSpec) -> control_pb2.HttpSettings:
    return control_pb2.HttpSettings(
        routes=list(h.routes),
        instances=h.instances,
        max_concurrent=h.max_concurrent,
        max_body_bytes=h.max_body_bytes,
        max_header_bytes=h.max_header_bytes,
        first_byte_timeout=h.first_byte_timeout,
        request_timeout=h.request_timeout,
    )


def _http_from_proto(m: control_pb2.HttpSettings) -> HttpSpec:
    return HttpSpec(
        routes=tuple(m.routes),
        instances=m.instances,
        max_concurrent=m.max_concurrent,
        max_body_bytes=m.max_body_bytes,
        max_header_bytes=m.max_header_bytes,
        first_byte_timeout=m.first_byte_timeout,
        request_timeout=m.request_timeout,
    )


def assignment_from_proto(msg: control_pb2.Assignment) -> Assignment:
    return Assignment(
        app=msg.app,
        generation=msg.generation,
        components=tuple(component_from_proto(c) for c in msg.components),
        prefetch=tuple(component_from_proto(c) for c in msg.prefetch),
        prefetch_generation=msg.prefetch_generation,
        prefetch_since=msg.prefetch_since,
    )


def component_from_proto(c: control_pb2.ComponentAssignment) -> ComponentAssignment:
    return ComponentAssignment(
        name=c.name,
        artifact=c.artifact,
        imports=tuple(
            ImportBinding(
                import_name=getattr(b, "import"),
                component=b.component,
                local=b.local,
                endpoints=tuple(b.endpoints),
                idempotent=tuple(b.idempotent),
                importer=b.importer,
            )
            for b in c.imports
        ),
        runtime=RuntimeSpec(
            mode=c.runtime.mode,
            instances=c.runtime.instances,
            max_queue=c.runtime.max_queue,
            memory_bytes=c.runtime.memory_bytes,
            timeout_seconds=c.runtime.timeout_seconds,
        ),
        grants=GrantSpec(
            env=dict(c.grants.env),
            volumes=tuple(VolumeGrant(name=v.name, path=v.path, read_only=v.read_only) for v in c.grants.volumes),
            interfaces=tuple(c.grants.interfaces) if c.grants.limit_interfaces else None,
            outbound_hosts=tuple(c.grants.allowed_outbound_hosts),
        ),
        fused_members=tuple(c.fused_members),
        signatures=tuple(c.signatures),
        trusted_keys=tuple(c.trusted_keys),
        inputs=tuple(c.inputs),
        callers=tuple(c.callers),
        http=_http_from_proto(c.http) if c.HasField("http") else HttpSpec(),
        source=c.source,
        config=_config_from_proto(c.config) if c.HasField("config") else ConfigSpec(),
        secret_versions=tuple(sorted(c.config.secret_versions.items())),
        buckets=tuple(BucketSpec(b.name, b.backend, b.max_value_bytes, b.max_bytes) for b in c.buckets),
    )


def node_to_proto(
    node: NodeInfo, state: str, instances: int, memory_used: int = 0, slots_used: int = 0, unreachable_since: float = 0
) -> control_pb2.Node:
    return control_pb2.Node(
        name=node.name,
        labels=node.labels,
        dataplane_address=node.dataplane_address,
        state=state,
        memory_bytes=node.memory_bytes,
        instance_slots=node.instance_slots,
        instances=instances,
        registered_at=node.registered_at,
        version=node.version,
        taints=list(node.taints),
        capabilities=list(node.capabilities),
        memory_used=memory_used,
        slots_used=slots_used,
        unreachable_since=unreachable_since,
        metrics_address=node.metrics_address,
        http_url=node.http_url,
    )


_INCIDENT = re.compile(r"^[0-9a-f]{8}$")


def report_to_proto(r: InstanceReport) -> control_pb2.InstanceStatus:
    return control_pb2.InstanceStatus(
        app=r.app,
        component=r.component,
        artifact=r.artifact,
        state=r.state,
        reason=r.reason,
        generation=r.generation,
        denials=r.denials,
        last_denial=r.last_denial,
        since=r.since,
        traps=r.traps,
        last_trap=r.last_trap,
        last_trap_id=r.last_trap_id,
        config_misses=r.config_misses,
        missed_config=r.missed_config,
    )


def report_from_proto(msg: control_pb2.InstanceStatus) -> InstanceReport:
    return InstanceReport(
        app=msg.app,
        component=msg.component,
        artifact=msg.artifact,
        state=msg.state,
        reason=msg.reason,
        generation=msg.generation,
        denials=msg.denials,
        last_denial=msg.last_denial,
        since=msg.since,
        traps=msg.traps,
        last_trap=msg.last_trap[:500],
        last_trap_id=msg.last_trap_id if _INCIDENT.match(msg.last_trap_id) else "",
        config_misses=msg.config_misses,
        missed_config=msg.missed_config[:2000],
    )


def event_to_proto(e: Event) -> control_pb2.Event:
    return control_pb2.Event(
        id=e.id, time=e.time, kind=e.kind, app=e.app, component=e.component, node=e.node, message=e.message
    )


def application_to_proto(doc: dict[str, Any]) -> control_pb2.Application:
    """The status document (:func:`controlplane.reconcile.status.app_status`) as its message: the constructor
    takes nested dicts in C, several times faster than ``json_format.ParseDict``, and also refuses unknown fields."""
    return control_pb2.Application(**doc)


def explanation_to_proto(component: str, decision: Any) -> control_pb2.ComponentExplanation:
    """A placement ComponentDecision (with explanation) as its message."""
    return control_pb2.ComponentExplanation(
        component=component,
        nodes=list(decision.nodes),
        desired_replicas=decision.desired,
        reason=decision.reason,
        filtered=dict(decision.filtered),
        candidates=[
            control_pb2.NodeExplanation(
                node=e.node,
                rejected_by=e.rejected_by,
                reason=e.reason,
                scores=dict(e.scores),
                total=e.total,
                chosen=e.chosen,
            )
            for e in decision.explanation
        ],
    )


def to_dict(msg: Any) -> dict[str, Any]:
    """A message as a JSON-ready dict with the proto field names."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
