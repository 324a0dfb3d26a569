"""The AgentControl service: registration, leases, desired state, reports, artifacts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, AsyncIterator

from controlplane.api.keyvalue import Grants, assigned_component, key_value
from controlplane.api.plane import Plane
from controlplane.reconcile.events import new_event
from controlplane.security.trust import for_assignment
from neon._proto import control_pb2, control_pb2_grpc
from neon._validate import NAME as NAME_PATTERN
from neon.errors import InvalidArgument, NeonGridError, NotFound, PermissionDenied
from neon.model import Assignment, NodeInfo
from neon.model_proto import assignment_to_proto, report_from_proto
from neon.observe import log
from neon.observe.metrics import LATENCY_BUCKETS
from neon.policy import parse_taint
from neon.rpc.servers import Context, edge
from neon.security.tls import peer_of

_log = log.get("neon.controlplane.agents")


MAX_SERIES = 10_000
# Registrations served at once by one replica; more wait their turn (cheaply, as coroutines). A registration
# is a dozen etcd requests, a heartbeat one keep-alive: ten thousand agents registering at once (a fleet's
# first start, or all of a restarted replica's agents coming back) otherwise fill the event loop and starve
# the heartbeats of the agents already registered, whose leases then expire (as Kubernetes' API priority and
# fairness keeps node leases from waiting behind other requests).
JOINING_AT_ONCE = 16


class AgentServicer(control_pb2_grpc.AgentControlServicer):
    def __init__(self, cp: Plane) -> None:
        self.cp = cp
        # node -> the lease it registered with here, checked once in etcd: a heartbeat with it needs only
        # the lease refresh (which fails for a lease revoked by a newer registration, wherever that was).
        self._leases: dict[str, NodeInfo] = {}
        self._grants = Grants()  # the components' bucket grants, read at most once a second
        # node -> what it last said of its prefetch lists (written to etcd only when that changes)
        self._prefetch: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}
        self._joining: asyncio.Semaphore | None = None  # made in the serving loop

    @edge
    async def Register(self, request: control_pb2.RegisterRequest, context: Context) -> control_pb2.RegisterResponse:
        if self._joining is None:
            self._joining = asyncio.Semaphore(JOINING_AT_ONCE)
        async with self._joining:
            return await self._register(request, context)

    async def _register(self, request: control_pb2.RegisterRequest, context: Context) -> control_pb2.RegisterResponse:
        if not NAME_PATTERN.match(request.name):
            raise InvalidArgument(f"node name must be a lowercase DNS label, got {request.name!r}", field="name")
        if not request.dataplane_address:
            raise InvalidArgument("dataplane_address is required", field="dataplane_address")
        for taint in request.taints:
            try:
                parse_taint(taint)
            except ValueError as err:
                raise InvalidArgument(str(err), field="taints") from None
        peer = peer_of(context)
        if peer.authenticated:  # the call guard has checked the name; here: is this the certificate admitted?
            try:
                await self.cp.admission.check_registered(request.name, peer.serial)
            except NeonGridError as err:
                _log.warning("registration refused", node=request.name, peer=context.peer(), reason=err.message)
                await self.cp.store.events.record(new_event("RegisterRefused", err.message, node=request.name))
                raise
        info = NodeInfo(
            name=request.name,
            labels=dict(request.labels),
            dataplane_address=request.dataplane_address,
            memory_bytes=request.memory_bytes,
            instance_slots=request.instance_slots,
            registered_at=time.time(),
            version=request.version,
            taints=tuple(request.taints),
            capabilities=tuple(sorted(set(request.capabilities))),
            metrics_address=request.metrics_address,
            http_url=request.http_url,
        )
        old = await self.cp.store.get_node(request.name)
        _, away_since = await self.cp.store.get_member(request.name) or (None, 0.0)
        ttl = self.cp.config.node_ttl
        lease_id = await self.cp.store.register_node(info, ttl)
        self._leases[info.name] = replace(info, lease_id=lease_id)
        self._prefetch.pop(info.name, None)  # its report is written again, on the new lease
        if old is not None and old.lease_id:
            # The node key moved to the new lease; revoking the old one drops the old status report.
            await self.cp.store.revoke_lease(old.lease_id)
        labels = ",".join(f"{k}={v}" for k, v in sorted(info.labels.items()))
        if away_since:
            msg = f"node {info.name} is reachable again after {info.registered_at - away_since:.0f}s Unreachable"
            await self.cp.store.events.record(new_event("NodeReady", msg, node=info.name))
        else:
            msg = f"node {info.name} joined ({labels or 'no labels'})"
            await self.cp.store.events.record(new_event("NodeJoined", msg, node=info.name))
        # The event above is logged already (at info); this adds only the addresses, for whoever debugs.
        _log.debug("node registered", node=info.name, labels=info.labels, dataplane=info.dataplane_address)
        return control_pb2.RegisterResponse(lease_id=lease_id, lease_ttl_seconds=ttl)

    @edge
    async def Heartbeat(self, request: control_pb2.HeartbeatRequest, context: Context) -> control_pb2.HeartbeatResponse:
        node = self._leases.get(request.name)
        if node is None or node.lease_id != request.lease_id:
            node = await self.cp.store.get_node(request.name)
            if node is None or node.lease_id != request.lease_id:
                raise NotFound(
                    f"node {request.name!r} is not registered with lease {request.lease_id}; register again",
                    kind="node",
                    name=request.name,
                )
            self._leases[node.name] = node
        try:
            ttl = await self.cp.store.refresh_lease(request.lease_id)
        except NotFound:
            self._leases.pop(request.name, None)
            raise
        peers, version, routes = await self.cp.beats.answers(node.name)
        reply = control_pb2.HeartbeatResponse(
            ttl_seconds=ttl,
            peers=[control_pb2.Peer(name=n.name, dataplane_address=n.dataplane_address) for n in peers],
        )
        if version and request.routes_version != version:
            reply.routes_version = version
            reply.routes_changed = True
            reply.routes.extend(
                control_pb2.HttpRoute(
                    route=e.route, app=e.app, component=e.component, nodes=e.nodes, endpoints=e.endpoints
                )
                for e in routes
            )
        return reply

    @edge
    async def WatchAssignments(
        self, request: control_pb2.WatchAssignmentsRequest, context: Context
    ) -> AsyncIterator[control_pb2.NodeAssignments]:
        if not NAME_PATTERN.match(request.name):
            raise InvalidArgument(f"node name must be a lowercase DNS label, got {request.name!r}", field="name")
        # Subscribed before the first read: a change after it wakes the stream, which reads again.
        with self.cp.assignments.subscribe(request.name) as changed:
            revision, docs = await self.cp.store.node_assignments(request.name)
            yield await _snapshot(self.cp, revision, docs)
            sent = docs
            while True:
                await changed.wait()
                changed.clear()
                await asyncio.sleep(0.01)  # let the rest of a transaction's events arrive
                revision, docs = await self.cp.store.node_assignments(request.name)
                if docs != sent:
                    sent = docs
                    yield await _snapshot(self.cp, revision, docs)

    @edge
    async def ReportStatus(self, request: control_pb2.StatusReport, context: Context) -> control_pb2.StatusAck:
        node = await self.cp.store.get_node(request.node)
        if node is None:
            raise NotFound(f"node {request.node!r} is not registered; register again", kind="node", name=request.node)
        await self.cp.intake.note(node, [report_from_proto(r) for r in request.instances])
        prefetch = (tuple(sorted(request.prefetched)), tuple(sorted(request.prefetch_failed.items())))
        if self._prefetch.get(node.name, ((), ())) != prefetch:
            await self.cp.store.reports.put_prefetch(node, list(prefetch[0]), dict(prefetch[1]))
            self._prefetch[node.name] = prefetch
        return control_pb2.StatusAck()

    @edge
    async def ReportMetrics(self, request: control_pb2.MetricsReport, context: Context) -> control_pb2.StatusAck:
        node = await self.cp.store.get_node(request.node)
        if node is None:
            raise NotFound(f"node {request.node!r} is not registered; register again", kind="node", name=request.node)
        links = [
            {
                "app": r.app,
                "importer": r.importer,
                "exporter": r.exporter,
                "rate": r.calls_per_second,
                "total": r.calls_total,
            }
            for r in request.links
        ]
        if len(request.components) + len(request.link_metrics) > MAX_SERIES:
            raise InvalidArgument(
                f"a metrics report may carry at most {MAX_SERIES} components and links", field="components"
            )
        buckets = len(LATENCY_BUCKETS) + 1
        counts = [len(c.latency_buckets) for c in request.components]
        counts += [len(m.latency_buckets) for m in request.link_metrics]
        for count in counts:
            if count not in (0, buckets):
                raise InvalidArgument(
                    f"latency_buckets must hold {buckets} counts (the bounds of "
                    f"neon.observe.metrics.LATENCY_BUCKETS and "
                    f"one above them), got {count}",
                    field="latency_buckets",
                )
        await self.cp.store.reports.put_metrics(node, {"rtt_ms": dict(request.rtt_ms), "links": links})
        for item in request.components:
            item.node = node.name  # a node speaks for itself only
        for link in request.link_metrics:
            link.node = node.name
        del request.links[:]
        request.rtt_ms.clear()
        await self.cp.store.reports.put_telemetry(node, request.SerializeToString())
        return control_pb2.StatusAck()

    @edge
    async def RenewCertificate(
        self, request: control_pb2.RenewCertificateRequest, context: Context
    ) -> control_pb2.RenewCertificateResponse:
        peer = peer_of(context)
        cert = await self.cp.admission.renew(request.name, peer.serial, request.csr_pem)
        _log.info("node certificate renewed", node=request.name, old_serial=peer.serial)
        return control_pb2.RenewCertificateResponse(cert_pem=cert)

    @edge
    async def FetchSecrets(
        self, request: control_pb2.FetchSecretsRequest, context: Context
    ) -> control_pb2.FetchSecretsResponse:
        """The values of the secrets a component assigned to the calling node references (the call guard has
        checked that the certificate is the node's); over mutual TLS only."""
        if not peer_of(context).authenticated:
            raise PermissionDenied(
                "secrets are given only over mutual TLS, to the certificate of the node that runs them"
            )
        comp = await assigned_component(self.cp.store, request.node, request.app, request.component, "secrets")
        values: dict[str, str] = {}
        versions: dict[str, int] = {}
        for ref in comp.config.secrets:
            data, versions[ref.secret] = await self.cp.store.secrets.values(ref.secret)
            if ref.secret_key not in data:
                raise NotFound(
                    f"secret {ref.secret} has no key {ref.secret_key!r} any more; {request.app}/{request.component} "
                    "needs it for its config key " + ref.key,
                    kind="secret key",
                    name=ref.secret_key,
                )
            values[ref.key] = data[ref.secret_key]
        _log.info(
            "secrets given", node=request.node, app=request.app, component=request.component, secrets=sorted(versions)
        )
        return control_pb2.FetchSecretsResponse(values=values, versions=versions)

    @edge
    async def KeyValue(self, request: control_pb2.KeyValueRequest, context: Context) -> control_pb2.KeyValueResponse:
        return await key_value(self.cp.store, request, self._grants)

    @edge
    async def GetCompiledCode(
        self, request: control_pb2.CompiledCodeRequest, context: Context
    ) -> control_pb2.CompiledCode:
        if await self.cp.store.artifacts.get_artifact(request.artifact) is None:
            raise NotFound(f"artifact {request.artifact!r} is not one this cluster holds", artifact=request.artifact)
        if request.refused_code:
            await self.cp.code.refused(
                request.node, request.artifact, request.engine, request.refused_code, request.refused_reason[:500]
            )
            return control_pb2.CompiledCode(reason="refused code forgotten; compile it yourself")
        made = await self.cp.code.code_for(request.artifact, request.engine)
        return control_pb2.CompiledCode(
            code=made.code, signature=made.signature, size=made.size, reason=made.reason, pending=made.pending
        )

    @edge
    async def FetchArtifact(
        self, request: control_pb2.FetchArtifactRequest, context: Context
    ) -> AsyncIterator[control_pb2.ArtifactChunk]:
        await self.cp.replicator.ensure(request.digest)  # it may have been uploaded through another replica
        for data in self.cp.blobs.read(request.digest):
            yield control_pb2.ArtifactChunk(data=data, digest=request.digest)


async def _snapshot(cp: Plane, revision: int, docs: list[dict[str, Any]]) -> control_pb2.NodeAssignments:
    """The node's assignments, each component with the signatures and keys its agent checks."""
    out = []
    for doc in docs:
        record = await cp.store.get_app(doc["app"])
        spec = record.spec if record is not None else None
        comps = [await for_assignment(c, spec, cp.store, cp.security) for c in doc.get("components", [])]
        ahead = doc.get("prefetch") or {}
        if ahead:  # what is prefetched is checked as what is started
            ahead = {
                **ahead,
                "components": [await for_assignment(c, spec, cp.store, cp.security) for c in ahead["components"]],
            }
        out.append(assignment_to_proto(Assignment.from_dict({**doc, "components": comps, "prefetch": ahead})))
    return control_pb2.NodeAssignments(revision=revision, assignments=out)
