"""Who may call what: the authorisation policy every server checks before a handler runs.

Roles come from the caller's certificate (:mod:`neon.security.pki`). The policy is a
table from RPC to the roles allowed, with one more rule: an agent may speak
only for its own node, so a request naming a node (``name``, ``node``,
``caller``) must name the certificate's. Anything not in the table is refused.
"""

from __future__ import annotations

from typing import Any

from neon.errors import PermissionDenied, Unauthenticated
from neon.security.pki import ADMIN, AGENT, CONTROLPLANE, ROLES, VIEWER
from neon.security.tls import Peer

_CONTROL_READS = (
    "GetApplication",
    "ListApplications",
    "ListNodes",
    "ListControlPlanes",
    "WatchEvents",
    "ExplainPlacement",
    "GetMetrics",
    "Logs",
    "DescribeComponent",
)
_CONTROL_WRITES = (
    "ApplyApplication",
    "DeleteApplication",
    "DeleteNode",
    "Invoke",
    "UploadArtifact",
    "RollbackApplication",
    "CreateJoinToken",
    "Backup",  # a read, but of everything: token hashes, certificate serials
)
_AGENT_CALLS = (
    "Register",
    "Heartbeat",
    "WatchAssignments",
    "ReportStatus",
    "ReportMetrics",
    "RenewCertificate",
    "FetchSecrets",  # only what a component assigned to the node references (checked by the handler)
    "KeyValue",  # only the cluster buckets a component assigned to the node is granted (checked by the handler)
    "GetCompiledCode",  # only of an artifact the cluster holds (checked by the handler)
)

POLICY: dict[str, frozenset[str]] = {
    **{f"/neon.v1.Control/{m}": frozenset({VIEWER, ADMIN}) for m in _CONTROL_READS},
    **{f"/neon.v1.Control/{m}": frozenset({ADMIN}) for m in _CONTROL_WRITES},
    **{f"/neon.v1.AgentControl/{m}": frozenset({AGENT}) for m in _AGENT_CALLS},
    # Secrets: names and keys are a read; values are never read back by anyone but an agent.
    "/neon.v1.Secrets/ListSecrets": frozenset({VIEWER, ADMIN}),
    **{f"/neon.v1.Secrets/{m}": frozenset({ADMIN}) for m in ("PutSecret", "DeleteSecret", "RotateSecretKey")},
    # Agents fetch what they run; replicas fetch blobs from each other.
    "/neon.v1.AgentControl/FetchArtifact": frozenset({AGENT, CONTROLPLANE}),
    # Forwarded calls come from agents; users' invokes are relayed by the control plane.
    "/neon.v1.DataPlane/Call": frozenset({AGENT}),
    "/neon.v1.DataPlane/CallBatch": frozenset({AGENT}),
    "/neon.v1.DataPlane/Invoke": frozenset({CONTROLPLANE}),
    "/neon.v1.DataPlane/ServeHttp": frozenset({AGENT}),  # a front door handing a request to where it runs
    # A component's output is relayed to users by the control plane.
    "/neon.v1.DataPlane/Logs": frozenset({CONTROLPLANE}),
    # What the API is (gRPC server reflection, both versions): any member of the cluster may ask.
    **{f"/grpc.reflection.{v}.ServerReflection/ServerReflectionInfo": frozenset(ROLES) for v in ("v1", "v1alpha")},
}
# Who may read the HTTPS pages (metrics, dashboard): users, and replicas scraping each other.
HTTP_READERS = frozenset({VIEWER, ADMIN, CONTROLPLANE})
# Served without a client certificate (on the join port too): the token is the credential.
OPEN = frozenset({"/neon.v1.Join/Join", "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
_NODE_FIELDS = ("name", "node", "caller")
_node_fields_of: dict[type, tuple[str, ...]] = {}


def _named_nodes(request: Any) -> list[Any]:
    """What ``request`` names in :data:`_NODE_FIELDS`. A protobuf message type's fields are looked up
    once: asking a message for a field it lacks raises and catches an AttributeError each time."""
    fields = _node_fields_of.get(type(request))
    if fields is None:
        descriptor = getattr(type(request), "DESCRIPTOR", None)
        if descriptor is None:  # not a protobuf message: ask the object itself
            return [getattr(request, f, None) for f in _NODE_FIELDS]
        fields = _node_fields_of[type(request)] = tuple(f for f in _NODE_FIELDS if f in descriptor.fields_by_name)
    return [getattr(request, f) for f in fields]


def check(method: str, peer: Peer, request: Any = None) -> None:
    """Raise Unauthenticated or PermissionDenied unless ``peer`` may call ``method`` with ``request``."""
    if peer.role == "*plaintext*" or method in OPEN:
        return
    if not peer.authenticated:
        raise Unauthenticated(
            f"{method} needs a client certificate signed by the cluster CA; this port only admits agents "
            "joining with a token (Join)",
            method=method,
        )
    allowed = POLICY.get(method)
    if allowed is None or peer.role not in allowed:
        need = " or ".join(sorted(allowed)) if allowed else "a role no certificate has"
        raise PermissionDenied(
            f"{peer.name} ({peer.role}) may not call {method}; it needs {need}",
            method=method,
            role=peer.role,
            identity=peer.name,
        )
    if peer.role == AGENT and request is not None:
        for named in _named_nodes(request):
            if isinstance(named, str) and named and named != peer.name:
                raise PermissionDenied(
                    f"node {peer.name} may not act as node {named!r} ({method}): a certificate speaks for its own node",
                    method=method,
                    role=peer.role,
                    identity=peer.name,
                )
