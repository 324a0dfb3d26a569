"""Everything the control plane keeps, in etcd (through aetcd).

Key layout (all values JSON):

    /neon/apps/<app>                 {"spec": manifest, "generation", "created_at", "updated_at"}
    /neon/nodes/<node>               NodeInfo, attached to the node's lease
    /neon/members/<node>             {"info": NodeInfo, "unreachable_since"}: every node that registered, no lease
    /neon/placements/<app>           {"generation", "components": {c: {"nodes": [...], "reason": ""}}}
    /neon/assign/<node>/<app>        Assignment: the node's slice of the app's graph
    /neon/status/<node>              [InstanceReport, ...], attached to the node's lease
    /neon/artifacts/<digest>         {"name", "size", "uploaded_at"}
    /neon/events/<seq>               Event
    /neon/history/<app>/<generation>  the manifest of each generation (the last HISTORY kept)
    /neon/compositions/<key>         {"digest": fused artifact} or {"error": why it cannot be fused}
    /neon/metrics/<node>             {"rtt_ms": {peer: ms}, "links": [...]}, attached to the node's lease
    /neon/telemetry/<node>           the agent's last neon.v1.MetricsReport (protobuf bytes), on the node's lease
    /neon/leader                     {"identity", "address", "since"}: the replica that reconciles, on its lease
    /neon/controlplanes/<identity>   {"address", "started"}: every live replica, on its own lease
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import time
from typing import Any, AsyncIterator, Callable

import aetcd

from controlplane.reconciler import AppPlan, AppRecord, World
from neon import log, manifest
from neon.errors import Conflict, FailedPrecondition, NotFound, Unavailable
from neon.manifest import AppSpec
from neon.model import Event, InstanceReport, NodeInfo

PREFIX = b"/neon/"
APPS = PREFIX + b"apps/"
NODES = PREFIX + b"nodes/"
MEMBERS = PREFIX + b"members/"
PLACEMENTS = PREFIX + b"placements/"
ASSIGN = PREFIX + b"assign/"
STATUS = PREFIX + b"status/"
ARTIFACTS = PREFIX + b"artifacts/"
EVENTS = PREFIX + b"events/"
METRICS = PREFIX + b"metrics/"
TELEMETRY = PREFIX + b"telemetry/"
HISTORY = PREFIX + b"history/"
COMPOSITIONS = PREFIX + b"compositions/"
LEADER = PREFIX + b"leader"
REPLICAS = PREFIX + b"controlplanes/"
TOKENS = PREFIX + b"tokens/"
IDENTITIES = PREFIX + b"identities/"  # admitted nodes' certificate serials
_events_log = log.get("neon.events")
HISTORY_KEEP = 10
EVENT_HISTORY = 1000


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _key(prefix: bytes, *parts: str) -> bytes:
    return prefix + "/".join(parts).encode()


def parse_etcd_url(url: str) -> tuple[str, int]:
    """``http://127.0.0.1:2379`` or ``127.0.0.1:2379`` -> (host, port)."""
    rest = url.strip().split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"etcd endpoint must look like http://HOST:PORT, got {url!r}")
    return host, int(port)


def grpc_target(urls: str) -> str:
    """The gRPC target for one etcd endpoint or a comma-separated list of a cluster's members.

    One endpoint is dialled by name, so a DNS name with a record per member
    (a Kubernetes headless service) fails over among them. Several endpoints
    become a static address list (``ipv4:h1:p1,h2:p2``; names are resolved
    once, here): gRPC's ``pick_first`` policy keeps one connection and moves to
    the next member when it fails, as etcd's own Go client does.
    """
    endpoints = [parse_etcd_url(u) for u in urls.split(",") if u.strip()]
    if not endpoints:
        raise ValueError("no etcd endpoint given; use http://HOST:PORT[,http://HOST:PORT...]")
    if len(endpoints) == 1:
        host, port = endpoints[0]
        return f"{host}:{port}"
    addresses = []
    for host, port in endpoints:
        try:
            ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError as err:
            raise ValueError(f"etcd endpoint {host}:{port} does not resolve to an IPv4 address: {err}") from None
        addresses.append(f"{ip}:{port}")
    return "ipv4:" + ",".join(addresses)


# What etcd says while a member is lost or a leader is elected (some arrive as UNKNOWN).
_TRANSIENT = ("deadline exceeded", "leader changed", "no leader", "timed out", "stream removed", "socket closed")


def _transient(err: Exception) -> bool:
    if isinstance(err, (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)):
        return True
    return any(text in str(err).lower() for text in _TRANSIENT)


class _EtcdCalls:
    """The aetcd client, with its connection errors raised as :class:`Unavailable`.

    While an etcd member is lost or a new etcd leader is elected, requests fail
    with UNAVAILABLE for a second or two, and one caught in the old leader's
    death hangs until etcd's own request timeout (7 s) unless the client's
    shorter deadline cuts it. Calls that are safe to repeat (reads, lease
    keep-alives, plain puts and deletes: the same write twice is the same write)
    are retried for up to ``retry_for`` seconds; transactions and new leases are
    not, since a lost reply may hide an applied one (a campaign that won): they
    raise at once, and their callers retry with fresh reads.
    """

    SAFE = frozenset(
        {"get", "get_prefix", "get_range", "status", "refresh_lease", "put", "delete", "delete_prefix", "delete_range"}
    )

    def __init__(self, client: Any, url: str, retry_for: float = 8.0) -> None:
        self._client = client
        self._url = url
        self._retry_for = retry_for

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + (self._retry_for if name in self.SAFE else 0.0)
            while True:
                try:
                    return await attr(*args, **kwargs)
                except aetcd.ClientError as err:
                    if not _transient(err):
                        raise
                    if time.monotonic() >= deadline:
                        raise Unavailable(f"etcd ({self._url}) did not answer {name}: {err}; retry") from None
                    await asyncio.sleep(0.1)

        return call


class Store:
    """Typed access to the control plane's keys.

    Args:
        url: One etcd client URL, or the members of a cluster comma-separated.
        timeout: Seconds one etcd request may take (it answers in milliseconds
            when healthy; a request stuck on a lost etcd leader is cut here, then
            retried where that is safe).
    """

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        # aetcd dials f"{host}:{port}"; split the target so that it dials it as it is.
        host, _, port = grpc_target(url).rpartition(":")
        self.url = url
        self.client = _EtcdCalls(aetcd.Client(host=host, port=int(port), timeout=timeout), url)
        self._event_seq = 0
        self.on_record: Callable[[Event], None] | None = None  # told of each event recorded

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
        await self.client.close()

    # ---------------------------------------------------- control planes --

    async def new_lease(self, ttl: int) -> int:
        return int((await self.client.lease(ttl)).id)

    async def put_replica(self, identity: str, doc: dict[str, Any], lease_id: int) -> None:
        """Announce a live control-plane replica (gone when its lease is)."""
        await self.client.put(_key(REPLICAS, identity), _dump(doc), lease=lease_id)

    async def replicas(self) -> dict[str, dict[str, Any]]:
        return {kv.key[len(REPLICAS) :].decode(): json.loads(kv.value) for kv in await self.client.get_prefix(REPLICAS)}

    async def campaign(self, doc: dict[str, Any], lease_id: int) -> bool:
        """Become the leader if nobody is: the key is created on ``lease_id`` only when absent."""
        tx = self.client.transactions
        ok, _ = await self.client.transaction(
            compare=[tx.version(LEADER) == 0], success=[tx.put(LEADER, _dump(doc), lease_id)], failure=[]
        )
        return bool(ok)

    async def leader(self) -> dict[str, Any] | None:
        got = await self.client.get(LEADER)
        return json.loads(got.value) if got else None

    # -------------------------------------------------------------- apps --

    async def get_app(self, name: str) -> AppRecord | None:
        got = await self.client.get(_key(APPS, name))
        return _app_record(got.value, got.mod_revision) if got else None

    async def list_apps(self) -> list[AppRecord]:
        return [_app_record(kv.value, kv.mod_revision) for kv in await self.client.get_prefix(APPS)]

    async def put_app(self, spec: AppSpec, capabilities: dict[str, tuple[str, ...]] | None = None) -> AppRecord:
        """Create or update an application atomically; the generation grows on every change."""
        key = _key(APPS, spec.name)
        for _ in range(10):
            got = await self.client.get(key)
            now = time.time()
            caps = dict(capabilities or {})
            if got is None:
                record = AppRecord(spec=spec, generation=1, created_at=now, updated_at=now, capabilities=caps)
                compare = [self.client.transactions.version(key) == 0]
            else:
                old = _app_record(got.value, got.mod_revision)
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
            ops = [
                tx.put(key, _app_doc(record)),
                tx.put(_history_key(spec.name, record.generation), _dump(spec.to_dict())),
            ]
            if record.generation > HISTORY_KEEP:
                ops.append(tx.delete(_history_key(spec.name, record.generation - HISTORY_KEEP)))
            ok, _ = await self.client.transaction(compare=compare, success=ops, failure=[])
            if ok:
                return record
        raise Conflict(f"application {spec.name!r} kept changing while it was applied; retry", app=spec.name)

    async def delete_app(self, name: str) -> bool:
        result = await self.client.delete(_key(APPS, name))
        await self.client.delete_prefix(_key(HISTORY, name) + b"/")
        return result is not None and result.deleted > 0  # aetcd returns None when nothing matched

    async def history(self, name: str) -> dict[int, AppSpec]:
        """The kept manifests of an application, by generation."""
        got = await self.client.get_prefix(_key(HISTORY, name) + b"/")
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
                tx.put(_key(NODES, node.name), _dump(info.to_dict()), lease.id),
                tx.put(_key(MEMBERS, node.name), _dump(member)),
            ],
            failure=[],
        )
        return int(lease.id)

    async def members(self) -> dict[str, tuple[NodeInfo, float]]:
        """Every node that has registered and was not forgotten: its info and when it became unreachable (0: not)."""
        out = {}
        for kv in await self.client.get_prefix(MEMBERS):
            out[kv.key[len(MEMBERS) :].decode()] = _member(kv.value)
        return out

    async def get_member(self, name: str) -> tuple[NodeInfo, float] | None:
        """One member's info and when it became unreachable (0: not), or None."""
        got = await self.client.get(_key(MEMBERS, name))
        return _member(got.value) if got else None

    async def mark_unreachable(self, name: str, since: float, event: Event | None = None) -> bool:
        """Record when a member was found without its lease, unless it registered again meanwhile;
        ``event`` is written in the same transaction (nobody sees the node Unreachable without it)."""
        tx = self.client.transactions
        key = _key(MEMBERS, name)
        got = await self.client.get(key)
        if got is None:
            return False
        doc = json.loads(got.value) | {"unreachable_since": since}
        puts = [tx.put(key, _dump(doc))]
        if event is not None:
            puts.append(tx.put(_key(EVENTS, event.id), _dump(event.to_dict())))
        ok, _ = await self.client.transaction(
            compare=[tx.mod(key) == got.mod_revision, tx.version(_key(NODES, name)) == 0],
            success=puts,
            failure=[],
        )
        if ok and event is not None:
            await self._recorded(event)
        return bool(ok)

    async def forget_node(self, name: str) -> bool:
        """Delete an unreachable member and revoke its admission (what it ran is rescheduled); refused while
        it holds a lease."""
        tx = self.client.transactions
        if await self.get_member(name) is None:
            return False
        ok, _ = await self.client.transaction(
            compare=[tx.version(_key(NODES, name)) == 0],
            success=[tx.delete(_key(MEMBERS, name)), tx.delete(_key(IDENTITIES, name))],
            failure=[],
        )
        if not ok:
            raise FailedPrecondition(
                f"node {name!r} is Ready (its agent holds a lease); stop the agent first", node=name
            )
        return True

    async def refresh_lease(self, lease_id: int) -> int:
        """Keep a node's lease alive; returns the TTL left, or raises NotFound if it expired."""
        reply = await self.client.refresh_lease(lease_id)
        if reply is None or reply.TTL <= 0:
            raise NotFound(f"lease {lease_id:x} has expired; register again", kind="lease", name=str(lease_id))
        return int(reply.TTL)

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease, deleting what is still attached to it; an expired lease is fine."""
        with contextlib.suppress(Exception):
            await self.client.revoke_lease(lease_id)

    async def list_nodes(self) -> list[NodeInfo]:
        return [NodeInfo.from_dict(json.loads(kv.value)) for kv in await self.client.get_prefix(NODES)]

    async def get_node(self, name: str) -> NodeInfo | None:
        got = await self.client.get(_key(NODES, name))
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
            placements[app] = {c: tuple(d["nodes"]) for c, d in doc["components"].items()}
            placed_at[app] = {c: float(d.get("since", 0.0)) for c, d in doc["components"].items()}
            fusion[app] = doc.get("fusion", [])
        assigned: dict[str, dict[str, dict[str, Any]]] = {}
        for kv in await self.client.get_prefix(ASSIGN):
            node, app = kv.key[len(ASSIGN) :].decode().split("/", 1)
            assigned.setdefault(app, {})[node] = json.loads(kv.value)
        rtt: dict[str, dict[str, float]] = {}
        rates: dict[str, dict[tuple[str, str], float]] = {}
        for node, doc in (await self.all_metrics()).items():
            if node not in nodes:
                continue
            rtt[node] = {peer: float(ms) for peer, ms in doc.get("rtt_ms", {}).items()}
            for link in doc.get("links", []):
                per_app = rates.setdefault(link["app"], {})
                key = (link["importer"], link["exporter"])
                per_app[key] = per_app.get(key, 0.0) + float(link["rate"])
        return World(
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
        now = time.time()
        before = world.placements.get(plan.app, {}) if world is not None else {}
        since = world.placed_at.get(plan.app, {}) if world is not None else {}
        placement_doc = {
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
        ops = [tx.put(_key(PLACEMENTS, plan.app), _dump(placement_doc))]
        ops += [tx.put(_key(ASSIGN, node, plan.app), _dump(a.to_dict())) for node, a in plan.writes.items()]
        ops += [tx.delete(_key(ASSIGN, node, plan.app)) for node in plan.remove_from]
        ok, _ = await self.client.transaction(
            compare=[tx.mod(_key(APPS, plan.app)) == record.revision], success=ops, failure=[]
        )
        return bool(ok)

    async def remove_orphan(self, app: str, nodes: frozenset[str]) -> bool:
        """Delete what is left of a deleted application, if it was not re-created meanwhile."""
        tx = self.client.transactions
        ops = [tx.delete(_key(ASSIGN, node, app)) for node in sorted(nodes)]
        ops.append(tx.delete(_key(PLACEMENTS, app)))
        ok, _ = await self.client.transaction(compare=[tx.version(_key(APPS, app)) == 0], success=ops, failure=[])
        return bool(ok)

    async def get_placement(self, app: str) -> dict[str, Any] | None:
        got = await self.client.get(_key(PLACEMENTS, app))
        return json.loads(got.value) if got else None

    # ------------------------------------------------------- assignments --

    async def node_assignments(self, node: str) -> tuple[int, list[dict[str, Any]]]:
        """The node's assignments and the revision they were read at."""
        got = await self.client.get_prefix(_key(ASSIGN, node) + b"/")
        return int(got.header.revision), [json.loads(kv.value) for kv in got]

    async def watch_prefix(self, prefix: bytes, start_revision: int | None = None) -> Any:
        return await self.client.watch_prefix(prefix, start_revision=start_revision)

    # ------------------------------------------------------------ status --

    async def put_status(self, node: NodeInfo, reports: list[InstanceReport]) -> None:
        await self.client.put(
            _key(STATUS, node.name), _dump([r.to_dict() for r in reports]), lease=node.lease_id or None
        )

    async def put_metrics(self, node: NodeInfo, doc: dict[str, Any]) -> None:
        await self.client.put(_key(METRICS, node.name), _dump(doc), lease=node.lease_id or None)

    async def all_metrics(self) -> dict[str, dict[str, Any]]:
        return {kv.key[len(METRICS) :].decode(): json.loads(kv.value) for kv in await self.client.get_prefix(METRICS)}

    async def put_telemetry(self, node: NodeInfo, report: bytes) -> None:
        await self.client.put(_key(TELEMETRY, node.name), report, lease=node.lease_id or None)

    async def all_telemetry(self) -> dict[str, bytes]:
        """Node -> its agent's last MetricsReport, serialized."""
        return {kv.key[len(TELEMETRY) :].decode(): bytes(kv.value) for kv in await self.client.get_prefix(TELEMETRY)}

    async def all_status(self) -> dict[str, list[InstanceReport]]:
        out: dict[str, list[InstanceReport]] = {}
        for kv in await self.client.get_prefix(STATUS):
            out[kv.key[len(STATUS) :].decode()] = [InstanceReport.from_dict(d) for d in json.loads(kv.value)]
        return out

    async def get_status(self, node: str) -> list[InstanceReport]:
        got = await self.client.get(_key(STATUS, node))
        return [InstanceReport.from_dict(d) for d in json.loads(got.value)] if got else []

    # --------------------------------------------------------- artifacts --

    async def put_artifact(
        self,
        digest: str,
        name: str,
        size: int,
        interfaces: dict[str, Any],
        signatures: list[str] | None = None,
        inputs: list[str] | None = None,
    ) -> None:
        """Record an artifact; ``signatures`` (JSON documents) and ``inputs`` (a fused artifact's) as given."""
        doc = {
            "name": name,
            "size": size,
            "uploaded_at": time.time(),
            "interfaces": interfaces,
            "signatures": signatures or [],
            "inputs": inputs or [],
        }
        await self.client.put(_key(ARTIFACTS, digest), _dump(doc))

    async def artifact_digests(self) -> list[str]:
        return sorted(
            kv.key[len(ARTIFACTS) :].decode() for kv in await self.client.get_prefix(ARTIFACTS, keys_only=True)
        )

    async def get_composition(self, key: str) -> dict[str, Any] | None:
        got = await self.client.get(_key(COMPOSITIONS, key))
        return json.loads(got.value) if got else None

    async def put_composition(self, key: str, doc: dict[str, Any]) -> None:
        await self.client.put(_key(COMPOSITIONS, key), _dump(doc))

    async def get_artifact(self, digest: str) -> dict[str, Any] | None:
        got = await self.client.get(_key(ARTIFACTS, digest))
        return json.loads(got.value) if got else None

    # ------------------------------------------------------------ events --

    async def record(self, event: Event) -> None:
        await self.client.put(_key(EVENTS, event.id), _dump(event.to_dict()))
        await self._recorded(event)

    async def _recorded(self, event: Event) -> None:
        """What follows an event's write: the hook, the log line, and now and then trimming the history."""
        if self.on_record is not None:
            self.on_record(event)
        ids = {k: v for k, v in (("app", event.app), ("component", event.component), ("node", event.node)) if v}
        _events_log.info(event.message, event_id=event.id, kind=event.kind, **ids)
        self._event_seq += 1
        if self._event_seq % 100 == 0:
            await self._trim_events()

    async def _trim_events(self) -> None:
        got = await self.client.get_prefix(EVENTS, keys_only=True)
        keys = sorted(kv.key for kv in got)
        if len(keys) > EVENT_HISTORY:
            await self.client.delete_range(keys[0], keys[len(keys) - EVENT_HISTORY])

    async def recent_events(self, limit: int) -> tuple[int, list[Event]]:
        got = await self.client.get_prefix(EVENTS)
        events = sorted((Event.from_dict(json.loads(kv.value)) for kv in got), key=lambda e: e.id)
        return int(got.header.revision), events[-limit:] if limit > 0 else []

    async def watch_events(self, start_revision: int) -> AsyncIterator[Event]:
        watch = await self.client.watch_prefix(EVENTS, start_revision=start_revision)
        try:
            async for ev in watch:
                if ev.kind == aetcd.rtypes.EventKind.PUT:
                    yield Event.from_dict(json.loads(ev.kv.value))
        finally:
            await watch.cancel()


def _member(value: bytes) -> tuple[NodeInfo, float]:
    doc = json.loads(value)
    return NodeInfo.from_dict(doc["info"]), float(doc["unreachable_since"])


def _history_key(app: str, generation: int) -> bytes:
    return _key(HISTORY, app, f"{generation:010d}")


def _app_doc(record: AppRecord) -> bytes:
    return _dump(
        {
            "spec": record.spec.to_dict(),
            "generation": record.generation,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "capabilities": {k: list(v) for k, v in record.capabilities.items()},
        }
    )


def _app_record(value: bytes, revision: int) -> AppRecord:
    doc = json.loads(value)
    return AppRecord(
        spec=manifest.parse(doc["spec"]),
        generation=int(doc["generation"]),
        created_at=float(doc["created_at"]),
        updated_at=float(doc["updated_at"]),
        revision=int(revision),
        capabilities={k: tuple(v) for k, v in doc.get("capabilities", {}).items()},
    )
