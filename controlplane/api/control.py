"""The user-facing Control service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import AsyncIterator

from controlplane.api.plane import Plane
from controlplane.api.queries import find_component, status_docs
from controlplane.api.secrets import pull_credentials, referenced_secrets
from controlplane.reconcile.events import new_event
from controlplane.reconcile.plan import explain
from controlplane.security.trust import check_app, checked_signatures, merged
from controlplane.state import snapshot
from controlplane.wit.http_checks import check_http_exports, check_route_claims
from controlplane.wit.interfaces import describe
from controlplane.wit.links import check_links
from controlplane.wit.typetree import describe_artifact
from neon import manifest
from neon._proto import calls_pb2, control_pb2, control_pb2_grpc
from neon.errors import InvalidArgument, InvalidManifest, NotFound, Unavailable, Untrusted
from neon.model_proto import application_to_proto, event_to_proto, explanation_to_proto
from neon.observe import log
from neon.rpc.servers import Context, edge
from neon.security.tls import peer_of

_log = log.get("neon.controlplane.api")


class ControlServicer(control_pb2_grpc.ControlServicer):
    def __init__(self, cp: Plane) -> None:
        self.cp = cp

    @edge
    async def ApplyApplication(
        self, request: control_pb2.ApplyApplicationRequest, context: Context
    ) -> control_pb2.Application:
        spec = manifest.load(request.manifest_yaml)
        auths = await pull_credentials(spec, self.cp.store.secrets) if spec.pull_secrets else None
        spec, pulled = await self.cp.puller.resolve(spec, request.allow_latest, auths)
        return await self._apply(spec, [p.note() for p in pulled])

    @edge
    async def RollbackApplication(
        self, request: control_pb2.RollbackApplicationRequest, context: Context
    ) -> control_pb2.Application:
        current = await self.cp.store.get_app(request.name)
        if current is None:
            raise NotFound(f"application {request.name!r} does not exist", kind="application", name=request.name)
        history = await self.cp.store.history(request.name)
        target = request.generation or max((g for g in history if g < current.generation), default=0)
        if target not in history:
            kept = ", ".join(str(g) for g in sorted(history)) or "none"
            raise NotFound(
                f"{request.name} has no generation {target or 'before ' + str(current.generation)} to roll back to "
                f"(kept: {kept})",
                kind="generation",
                name=str(target),
            )
        await self.cp.store.events.record(
            new_event("RolledBack", f"{request.name} rolled back to generation {target}", app=request.name)
        )
        return await self._apply(history[target])

    async def _apply(self, spec: manifest.AppSpec, pulled: Sequence[str] = ()) -> control_pb2.Application:
        """Validate against the artifacts' interfaces, then store; nothing is written for a refused spec.
        ``pulled``: what was pulled from OCI registries for it (said in the Applied event)."""
        summaries, records = {}, {}
        for i, comp in enumerate(spec.components):
            meta = await self.cp.store.artifacts.get_artifact(comp.artifact)
            # Uploaded through another replica, its copy may not be here yet: fetched from the replica that has it.
            if meta is None or not await self.cp.replicator.ensure(comp.artifact):
                raise InvalidManifest(
                    f"spec.components[{i}].artifact {comp.artifact} ({comp.name}) has not been uploaded; "
                    "`neon apply` uploads files named by path",
                    field=f"spec.components[{i}].artifact",
                )
            summaries[comp.artifact] = meta["interfaces"]
            records[comp.artifact] = meta
        capabilities = check_links(spec, summaries)
        check_http_exports(spec, summaries)
        if any(c.http.enabled for c in spec.components):
            check_route_claims(spec, [record.spec for record in await self.cp.store.list_apps()])
        check_app(spec, records, self.cp.security)
        guards = await referenced_secrets(spec, self.cp.store.secrets)
        record = await self.cp.store.put_app(spec, capabilities, guards)
        await self.cp.store.events.record(
            new_event(
                "Applied",
                f"{spec.name} generation {record.generation} applied"
                + (f" (from OCI: {'; '.join(pulled)})" if pulled else ""),
                app=spec.name,
            )
        )
        _log.info("application applied", app=spec.name, generation=record.generation)
        self.cp.reconciler.mark_dirty()
        return await self._status(spec.name)

    @edge
    async def GetApplication(
        self, request: control_pb2.GetApplicationRequest, context: Context
    ) -> control_pb2.Application:
        return await self._status(request.name)

    @edge
    async def ListApplications(
        self, request: control_pb2.ListApplicationsRequest, context: Context
    ) -> control_pb2.ListApplicationsResponse:
        view = await self.cp.reads.view()
        return self.cp.reads.memo(
            "apps",
            view,
            lambda: control_pb2.ListApplicationsResponse(
                applications=[application_to_proto(doc) for doc in status_docs(view)]
            ),
        )

    @edge
    async def DeleteApplication(
        self, request: control_pb2.DeleteApplicationRequest, context: Context
    ) -> control_pb2.DeleteApplicationResponse:
        if not await self.cp.store.delete_app(request.name):
            raise NotFound(f"application {request.name!r} does not exist", kind="application", name=request.name)
        await self.cp.store.events.record(new_event("Deleted", f"{request.name} deleted", app=request.name))
        self.cp.reconciler.mark_dirty()
        return control_pb2.DeleteApplicationResponse()

    @edge
    async def ListNodes(self, request: control_pb2.ListNodesRequest, context: Context) -> control_pb2.ListNodesResponse:
        view = await self.cp.reads.view()
        return self.cp.reads.memo("nodes", view, lambda: self.cp.reads.node_list(view))

    @edge
    async def DeleteNode(
        self, request: control_pb2.DeleteNodeRequest, context: Context
    ) -> control_pb2.DeleteNodeResponse:
        if not await self.cp.store.forget_node(request.name):
            raise NotFound(f"node {request.name!r} does not exist", kind="node", name=request.name)
        await self.cp.store.events.record(new_event("NodeDeleted", f"node {request.name} deleted", node=request.name))
        self.cp.reconciler.mark_dirty()
        return control_pb2.DeleteNodeResponse()

    @edge
    async def CreateJoinToken(
        self, request: control_pb2.CreateJoinTokenRequest, context: Context
    ) -> control_pb2.JoinToken:
        by = peer_of(context).name
        token = await self.cp.admission.create_token(request.ttl_seconds or 3600.0, request.node, created_by=by)
        who = f" for node {token.node}" if token.node else ""
        msg = f"join token {token.token.split('.')[0]} created{who} by {by or 'a plaintext client'}"
        await self.cp.store.events.record(new_event("JoinTokenCreated", msg, node=token.node))
        return control_pb2.JoinToken(
            token=token.token, expires_at=token.expires_at, node=token.node, join_addresses=[self.cp.join_address]
        )

    @edge
    async def ListControlPlanes(
        self, request: control_pb2.ListControlPlanesRequest, context: Context
    ) -> control_pb2.ListControlPlanesResponse:
        leader = await self.cp.store.replicas.leader() or {}
        replicas = await self.cp.store.replicas.replicas()
        return control_pb2.ListControlPlanesResponse(
            replicas=[
                control_pb2.ControlPlaneReplica(
                    identity=identity,
                    address=doc.get("address", ""),
                    leader=identity == leader.get("identity"),
                    started_at=doc.get("started", 0.0),
                    http_address=doc.get("http", ""),
                    self=identity == self.cp.identity,
                )
                for identity, doc in sorted(replicas.items())
            ],
            leader_since=leader.get("since", 0.0),
        )

    @edge
    async def WatchEvents(
        self, request: control_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[control_pb2.Event]:
        if request.history < 0:
            raise InvalidArgument("history must be >= 0", field="history")
        revision, past = await self.cp.store.events.recent_events(10_000 if request.app else (request.history or 50))
        if request.app:
            past = [e for e in past if e.app == request.app][-(request.history or 50) :]
        for event in past:
            yield event_to_proto(event)
        if request.no_follow:
            return
        async for event in self.cp.store.events.watch_events(revision + 1):
            if not request.app or event.app == request.app:
                yield event_to_proto(event)

    @edge
    async def GetMetrics(
        self, request: control_pb2.GetMetricsRequest, context: Context
    ) -> control_pb2.GetMetricsResponse:
        reply = control_pb2.GetMetricsResponse()
        for report in await self.cp.reads.telemetry():
            reply.components.extend(c for c in report.components if not request.app or c.app == request.app)
            reply.links.extend(link for link in report.link_metrics if not request.app or link.app == request.app)
        return reply

    @edge
    async def Logs(self, request: calls_pb2.LogsRequest, context: Context) -> AsyncIterator[calls_pb2.LogLine]:
        if request.tail < 0:
            raise InvalidArgument("tail must be >= 0", field="tail")
        async for line in self.cp.relay.logs(request):
            yield line

    @edge
    async def Invoke(self, request: calls_pb2.InvokeRequest, context: Context) -> calls_pb2.InvokeResponse:
        remaining = context.time_remaining()
        return await self.cp.relay.invoke(request, remaining)

    @edge
    async def DescribeComponent(
        self, request: control_pb2.DescribeComponentRequest, context: Context
    ) -> control_pb2.ComponentDescription:
        _, comp = find_component(await self.cp.reads.view(), request.app, request.component)
        if not await self.cp.replicator.ensure(comp.artifact):
            raise Unavailable(
                f"artifact {comp.artifact} of {request.app}/{comp.name} is on no control-plane replica that answers "
                "now (replicas copy blobs from each other); retry",
                app=request.app,
                component=comp.name,
            )
        doc = await asyncio.to_thread(describe_artifact, comp.artifact, self.cp.blobs.path(comp.artifact))
        return control_pb2.ComponentDescription(app=request.app, component=comp.name, artifact=comp.artifact, **doc)

    @edge
    async def Backup(
        self, request: control_pb2.BackupRequest, context: Context
    ) -> AsyncIterator[control_pb2.BackupChunk]:
        taken = self.cp.config.data_dir / f"backup-{uuid.uuid4().hex}.db"
        try:
            manifest = await snapshot.take(self.cp.store, taken, self.cp.identity)
            with taken.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    yield control_pb2.BackupChunk(data=chunk)
            yield control_pb2.BackupChunk(manifest_json=json.dumps(manifest))
        finally:
            taken.unlink(missing_ok=True)
        who = peer_of(context).name or "a plaintext client"
        await self.cp.store.events.record(
            new_event("BackedUp", f"backup of etcd revision {manifest['etcd_revision']} taken by {who}")
        )

    @edge
    async def UploadArtifact(
        self, request_iterator: AsyncIterator[control_pb2.ArtifactChunk], context: Context
    ) -> control_pb2.ArtifactRef:
        first: dict[str, str] = {}
        documents: list[str] = []

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request_iterator:
                if not first:
                    first.update(name=chunk.name or "artifact", digest=chunk.digest)
                    documents.extend(chunk.signatures)
                    if len(first["name"]) > 256 or not first["name"].isprintable():
                        raise InvalidArgument(
                            f"artifact name {first['name'][:64]!r} must be printable and at most 256 characters",
                            field="name",
                        )
                yield chunk.data

        # The expected digest is only known after the first chunk; check it after writing.
        digest, size = await self.cp.blobs.write(chunks())
        name = first.get("name", "artifact")
        if first.get("digest") and first["digest"] != digest:
            raise InvalidArgument(
                f"upload of {name} does not match its announced digest {first['digest']}", field="digest"
            )
        known = await self.cp.store.artifacts.get_artifact(digest)
        try:
            new = checked_signatures(digest, documents, name)
            interfaces = await asyncio.to_thread(describe, self.cp.blobs.path(digest))
        except (InvalidArgument, Untrusted) as err:
            if known is None:
                self.cp.blobs.remove(digest)  # refused: nothing is left behind
            if isinstance(err, Untrusted):
                raise InvalidArgument(f"{err.message}; sign the file again", field="signatures") from None
            raise InvalidArgument(f"{name}: {err.message}", field="data") from None
        signatures = merged(known, new)
        await self.cp.store.artifacts.put_artifact(digest, name, size, interfaces, signatures)
        _log.info("artifact stored", digest=digest, size=size, artifact_name=name, signatures=len(signatures))
        return control_pb2.ArtifactRef(digest=digest, size=size, name=name)

    @edge
    async def ExplainPlacement(
        self, request: control_pb2.ExplainPlacementRequest, context: Context
    ) -> control_pb2.ExplainPlacementResponse:
        world = await self.cp.store.read_world()
        if request.app not in world.apps:
            raise NotFound(f"application {request.app!r} does not exist", kind="application", name=request.app)
        spec = world.apps[request.app].spec
        names = [c.name for c in spec.components]
        if request.component and request.component not in names:
            raise NotFound(
                f"application {request.app!r} has no component {request.component!r} (it has: {', '.join(names)})",
                kind="component",
                name=request.component,
            )
        placement = explain(world, request.app, self.cp.placer)
        return control_pb2.ExplainPlacementResponse(
            components=[
                explanation_to_proto(name, decision)
                for name, decision in placement.components.items()
                if not request.component or name == request.component
            ]
        )

    async def _status(self, name: str) -> control_pb2.Application:
        view = await self.cp.reads.view()
        return self.cp.reads.memo(("app", name), view, lambda: application_to_proto(status_docs(view, name)[0]))
