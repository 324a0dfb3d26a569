"""Everything the control plane keeps, in etcd (through aetcd): the applications, nodes, placements and
assignments here, and beside them (as ``Store.events``, ``.reports``, ``.artifacts``, ``.replicas``) the
event log, agents' reports, artifact records and control-plane replicas; the key layout is in
:mod:`controlplane.state.keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from controlplane.state.artifact_records import ArtifactRecords
from controlplane.state.etcd import EtcdCalls, etcd_client
from controlplane.state.event_log import EventLog
from controlplane.state.keys import (
    APPS,
    ASSIGN,
    EVENTS,
    HISTORY,
    HISTORY_KEEP,
    IDENTITIES,
    LEADER,
    MEMBERS,
    NODES,
    PLACEMENTS,
    ROLLOUTS,
    dump,
    etcd_key,
)
from controlplane.state.kv_store import KvStore
from controlplane.state.lease_keeper import LeaseKeeper
from controlplane.state.replicas import Replicas
from controlplane.state.reports import Reports
from controlplane.state.secret_store import SecretStore
from controlplane.state.world import AppPlan, AppRecord, World, placed_nodes
from neon import manifest
from neon.errors import Conflict, FailedPrecondition, NotFound, Unavailable
from neon.manifest import AppSpec
from neon.model import Event, NodeInfo
from neon.security.tls import Credentials


class Store:
    """Typed access to the control plane's keys.

    Args:
        url: One etcd client URL, or the members of a cluster comma-separated.
        tls: The certificate the control plane presents to etcd served over TLS (an ``https://`` URL).
        timeout: Seconds one etcd request may take (it answers in milliseconds
            when healthy; a request stuck on a lost etcd leader is cut here, then
            retried where that is safe).
    """

    def __init__(
        self, url: str, timeout: float = 3.0, tls: Credentials | None = None, kek: bytes | None = None, no_kek: str = ""
    ) -> None:
        self.url = url
        self.tls = tls  # kept for clients of one member each (controlplane.state.compaction's defragmentation)
        raw = etcd_client(url, timeout, tls)
        self.client = EtcdCalls(raw, url)
        self.leases = LeaseKeeper(raw, url, timeout)  # the nodes' and the replicas' leases, on one stream
        self.events = EventLog(self.client)
        self.reports = Reports(self.client)
        self.artifacts = ArtifactRecords(self.client)
        self.replicas = Replicas(self.client)
        self.secrets = SecretStore(self.client, kek, no_kek)  # ``kek``: see controlplane.state.secret_store
        self.kv = KvStore(self.client)

    async def connect(self, wait: float = 30.0) -> None:
        """Connect, waiting up to ``wait`` seconds for etcd to answer."""
        deadline = time.monotonic() + wait
        while True:
            try:
                await self.client.status()
                return
            except Exception as err:  # noqa: BLE001 - aetcd raises several types while etcd starts
                if time.monotonic() > deadline:
                    raise Unavailable(f"etcd at {self.url} did not answer within {wait:.0f}s: {err}") from None
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self.leases.close()
        await self.client.close()

    # -------------------------------------------------------------- apps --

    async def get_app(self, name: str) -> AppRecord | None:
        got = await self.client.get(etcd_key(APPS, name))
        return app_record(got.value, got.mod_revision) if got else None

    async def list_apps(self) -> list[AppRecord]:
        return [app_record(kv.value, kv.mod_revision) for kv in await self.client.get_prefix(APPS)]

    async def put_app(
        self,
        spec: AppSpec,
        capabilities: dict[str, tuple[str, ...]] | None = None,
        guards: dict[bytes, int] | None = None,
    ) -> AppRecord:
        """Create or update an application atomically; the generation grows on every change. ``guards``: keys
        (the secrets it references) that must still be at the mod revision read, or it is refused."""
        key = etcd_key(APPS, spec.name)
        guards = guards or {}
        for _ in range(10):
            got = await self.client.get(key)
            now = time.time()
            caps = dict(capabilities or {})
            if got is None:
                record = AppRecord(spec=spec, generation=1, created_at=now, updated_at=now, capabilities=caps)
                compare = [self.client.transactions.version(key) == 0]
            else:
                old = app_record(got.value, got.mod_revision)
                if old.spec == spec and old.capabilities == caps:
                    return old
                record = AppRecord(
                    spec=spec,
                    generation=old.generation + 1,
                    created_at=old.created_at,
                    updated_at=now,
                    capabilities=caps,
                )
                compare = [self.client.transactions.mod(key) == got.mod_revision]
            tx = self.client.transactions
            compare += [tx.mod(k) == rev for k, rev in guards.items()]
            ops = [
                tx.put(key, _app_doc(record)),
                tx.put(_history_key(spec.name, record.generation), dump(spec.to_dict())),
            ]
            if record.generation > HISTORY_KEEP:
                ops.append(tx.delete(_history_key(spec.name, record.generation - HISTORY_KEEP)))
            ok, _ = await self.client.transaction(compare=compare, success=ops, failure=[])
            if ok:
                return record
            for guarded, rev in guards.items():
                now_at = await self.client.get(guarded)
                if now_at is None or now_at.mod_revision != rev:
                    what = guarded.decode().removeprefix("/neon/").rstrip("/")
                    raise Conflict(f"{what} changed while {spec.name} was applied; apply again", app=spec.name)
        raise Conflict(f"application {spec.name!r} kept changing while it was applied; retry", app=spec.name)

    async def delete_app(self, name: str) -> bool:
        result = await self.client.delete(etcd_key(APPS, name))
        await self.client.delete_prefix(etcd_key(HISTORY, name) + b"/")
        await self.kv.delete_app(name)
        return result is not None and result.deleted > 0  # aetcd returns None when nothing matched

    async def history(self, name: str) -> dict[int, AppSpec]:
        """The kept manifests of an application, by generation."""
        got = await self.client.get_prefix(etcd_key(HISTORY, name) + b"/")
        return {int(kv.key.rsplit(b"/", 1)[1]): manifest.parse(json.loads(kv.value)) for kv in got}

    # ------------------------------------------------------------- nodes --

    async def register_node(self, node: NodeInfo, ttl: int) -> int:
        """Store the node under a fresh lease, and as a member that is reachable; returns the lease id."""
        lease = await self.client.lease(ttl)
        info = NodeInfo(**{**node.to_dict(), "lease_id": lease.id})
        tx = self.client.transactions
        member = {"info": node.to_dict() | {"lease_id": 0}, "unreachable_since": 0.0}
        await self.client.transaction(
            compare=[],
            success=[
                tx.put(etcd_key(NODES, node.name), dump(info.to_dict()), lease.id),
                tx.put(etcd_key(MEMBERS, node.name), dump(member)),
            ],
            failure=[],
        )
        return int(lease.id)

    async def members(self) -> dict[str, tuple[NodeInfo, float]]:
        """Every node that has registered and was not forgotten: its info and when it became unreachable (0: not)."""
        out = {}
        for kv in await self.client.get_prefix(MEMBERS):
            out[kv.key[len(MEMBERS) :].decode()] = member_record(kv.value)
        return out

    async def get_member(self, name: str) -> tuple[NodeInfo, float] | None:
        """One member's info and when it became unreachable (0: not), or None."""
        got = await self.client.get(etcd_key(MEMBERS, name))
        return member_record(got.value) if got else None

    async def mark_unreachable(self, name: str, since: float, event: Event | None = None) -> bool:
        """Record when a member was found without its lease, unless it registered again meanwhile;
        ``event`` is written in the same transaction (nobody sees the node Unreachable without it)."""
        tx = self.client.transactions
        key = etcd_key(MEMBERS, name)
        got = await self.client.get(key)
        if got is None:
            return False
        doc = json.loads(got.value) | {"unreachable_since": since}
        puts = [tx.put(key, dump(doc))]
        if event is not None:
            puts.append(tx.put(etcd_key(EVENTS, event.id), dump(event.to_dict())))
        ok, _ = await self.client.transaction(
            compare=[tx.mod(key) == got.mod_revision, tx.version(etcd_key(NODES, name)) == 0],
            success=puts,
            failure=[],
        )
        if ok and event is not None:
            await self.events.recorded(event)
        return bool(ok)

    async def forget_node(self, name: str) -> bool:
        """Delete an unreachable member and revoke its admission (what it ran is rescheduled); refused while
        it holds a lease."""
        tx = self.client.transactions
        if await self.get_member(name) is None:
            return False
        ok, _ = await self.client.transaction(
            compare=[tx.version(etcd_key(NODES, name)) == 0],
            success=[tx.delete(etcd_key(MEMBERS, name)), tx.delete(etcd_key(IDENTITIES, name))],
            failure=[],
        )
        if not ok:
            raise FailedPrecondition(
                f"node {name!r} is Ready (its agent holds a lease); stop the agent first", node=name
            )
        return True

    async def refresh_lease(self, lease_id: int) -> int:
        """Keep a node's lease alive; returns the TTL left, or raises NotFound if it expired."""
        ttl = await self.leases.refresh(lease_id)
        if ttl <= 0:
            raise NotFound(f"lease {lease_id:x} has expired; register again", kind="lease", name=str(lease_id))
        return ttl

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease, deleting what is still attached to it; an expired lease is fine."""
        with contextlib.suppress(Exception):
            await self.client.revoke_lease(lease_id)

    async def list_nodes(self) -> list[NodeInfo]:
        return [NodeInfo.from_dict(json.loads(kv.value)) for kv in await self.client.get_prefix(NODES)]

    async def get_node(self, name: str) -> NodeInfo | None:
        got = await self.client.get(etcd_key(NODES, name))
        return NodeInfo.from_dict(json.loads(got.value)) if got else None

    # ------------------------------------------------ reconciler support --

    async def read_world(self) -> World:
        """Reflect the stored state into the reconciler's model."""
        now = time.time()
        apps = {r.spec.name: r for r in await self.list_apps()}
        nodes = {n.name: n for n in await self.list_nodes()}
        unreachable = {}
        for name, (info, since) in (await self.members()).items():
            if name not in nodes:
                nodes[name] = info
                unreachable[name] = since
        placements: dict[str, dict[str, tuple[str, ...]]] = {}
        placed_at: dict[str, dict[str, float]] = {}
        fusion: dict[str, list[dict[str, Any]]] = {}
        for kv in await self.client.get_prefix(PLACEMENTS):
            doc = json.loads(kv.value)
            app = kv.key[len(PLACEMENTS) :].decode()
            placements[app] = placed_nodes(doc)
            placed_at[app] = {c: float(d.get("since", 0.0)) for c, d in doc["components"].items()}
            fusion[app] = doc.get("fusion", [])
        assigned: dict[str, dict[str, dict[str, Any]]] = {}
        for kv in await self.client.get_prefix(ASSIGN):
            node, app = kv.key[len(ASSIGN) :].decode().split("/", 1)
            assigned.setdefault(app, {})[node] = json.loads(kv.value)
        rtt: dict[str, dict[str, float]] = {}
        rates: dict[str, dict[tuple[str, str], float]] = {}
        for node, doc in (await self.reports.all_metrics()).items():
            if node not in nodes:
                continue
            rtt[node] = {peer: float(ms) for peer, ms in doc.get("rtt_ms", {}).items()}
            for link in doc.get("links", []):
                per_app = rates.setdefault(link["app"], {})
                key = (link["importer"], link["exporter"])
                per_app[key] = per_app.get(key, 0.0) + float(link["rate"])
        prefetched, prefetch_failed = await self.reports.all_prefetch()  # on the nodes' leases
        return World(
            prefetched=prefetched,
            prefetch_failed=prefetch_failed,
            secret_versions=await self.secrets.versions(),
            apps=apps,
            nodes=nodes,
            placements=placements,
            assigned=assigned,
            rtt=rtt,
            call_rates=rates,
            fusion=fusion,
            unreachable_since=unreachable,
            now=now,
            placed_at=placed_at,
        )

    async def write_plan(self, plan: AppPlan, record: AppRecord, world: World | None = None) -> bool:
        """Write one application's plan if the app is unchanged since it was read.

        Each component's ``since`` is when its nodes last changed (kept from ``world`` otherwise)."""
        tx = self.client.transactions
        placement_doc = placement_document(plan, record, world, time.time())
        if plan.holding is not None:  # the placement waits; the status shows what the rollout waits for
            ops = [tx.put(etcd_key(ROLLOUTS, plan.app), dump(dict(plan.holding)))]
        else:
            ops = [tx.put(etcd_key(PLACEMENTS, plan.app), dump(placement_doc)), tx.delete(etcd_key(ROLLOUTS, plan.app))]
        ops += [tx.put(etcd_key(ASSIGN, node, plan.app), dump(a.to_dict())) for node, a in plan.writes.items()]
        ops += [tx.delete(etcd_key(ASSIGN, node, plan.app)) for node in plan.remove_from]
        ok, _ = await self.client.transaction(
            compare=[tx.mod(etcd_key(APPS, plan.app)) == record.revision], success=ops, failure=[]
        )
        return bool(ok)

    async def remove_orphan(self, app: str, nodes: frozenset[str]) -> bool:
        """Delete what is left of a deleted application, if it was not re-created meanwhile."""
        tx = self.client.transactions
        ops = [tx.delete(etcd_key(ASSIGN, node, app)) for node in sorted(nodes)]
        ops += [tx.delete(etcd_key(PLACEMENTS, app)), tx.delete(etcd_key(ROLLOUTS, app))]
        ok, _ = await self.client.transaction(compare=[tx.version(etcd_key(APPS, app)) == 0], success=ops, failure=[])
        return bool(ok)

    async def get_placement(self, app: str) -> dict[str, Any] | None:
        got = await self.client.get(etcd_key(PLACEMENTS, app))
        return json.loads(got.value) if got else None

    # ------------------------------------------------------- assignments --

    async def node_assignments(self, node: str) -> tuple[int, list[dict[str, Any]]]:
        """The node's assignments and the revision they were read at."""
        got = await self.client.get_prefix(etcd_key(ASSIGN, node) + b"/")
        return int(got.header.revision), [json.loads(kv.value) for kv in got]

    async def revision(self) -> int:
        """etcd's current revision (one range request of one key, without values)."""
        got = await self.client.get_prefix(LEADER, keys_only=True)
        return int(got.header.revision)

    async def watch_prefix(self, prefix: bytes, start_revision: int | None = None) -> Any:
        return await self.client.watch_prefix(prefix, start_revision=start_revision)


def placement_document(plan: AppPlan, record: AppRecord, world: World | None, now: float) -> dict[str, Any]:
    """The placement as stored: each component's nodes, why, and since when they are its nodes."""
    before = world.placements.get(plan.app, {}) if world is not None else {}
    since = world.placed_at.get(plan.app, {}) if world is not None else {}
    return {
        "generation": record.generation,
        "components": {
            name: {
                "nodes": list(d.nodes),
                "reason": d.reason,
                "desired": d.desired,
                "filtered": dict(d.filtered),
                "since": (since.get(name) or now) if tuple(before.get(name, ())) == tuple(d.nodes) else now,
            }
            for name, d in plan.placement.components.items()
        },
        "fusion": list(plan.fusion),
    }


def member_record(value: bytes) -> tuple[NodeInfo, float]:
    doc = json.loads(value)
    return NodeInfo.from_dict(doc["info"]), float(doc["unreachable_since"])


def _history_key(app: str, generation: int) -> bytes:
    return etcd_key(HISTORY, app, f"{generation:010d}")


def _app_doc(record: AppRecord) -> bytes:
    return dump(
        {
            "spec": record.spec.to_dict(),
            "generation": record.generation,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "capabilities": {k: list(v) for k, v in record.capabilities.items()},
        }
    )


def app_record(value: bytes, revision: int) -> AppRecord:
    doc = json.loads(value)
    return AppRecord(
        spec=manifest.parse(doc["spec"]),
        generation=int(doc["generation"]),
        created_at=float(doc["created_at"]),
        updated_at=float(doc["updated_at"]),
        revision=int(revision),
        capabilities={k: tuple(v) for k, v in doc.get("capabilities", {}).items()},
    )
