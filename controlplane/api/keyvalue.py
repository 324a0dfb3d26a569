"""AgentControl.KeyValue: one operation on a cluster bucket, for a component assigned to the calling node that
is granted the bucket (the call guard has checked that the certificate is the node's)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from controlplane.state.store import Store
from neon._proto import control_pb2
from neon.bucket_spec import BucketSpec
from neon.errors import InvalidArgument, PermissionDenied
from neon.model import Assignment, ComponentAssignment

OPS = ("get", "exists", "read", "set", "delete", "list", "increment", "swap")


async def assigned_component(store: Store, node: str, app: str, component: str, what: str) -> ComponentAssignment:
    """The component as assigned to ``node``; PermissionDenied (saying ``what`` is refused) when it is not."""
    _, docs = await store.node_assignments(node)
    for doc in docs:
        if doc["app"] == app:
            for comp in Assignment.from_dict(doc).components:
                if comp.name == component:
                    return comp
    raise PermissionDenied(f"node {node} runs no component {app}/{component}: it is given no {what} of it")


Lookup = Callable[[Store, str, str, str, str], Awaitable[ComponentAssignment]]


class Grants:
    """What ``assigned_component`` answered for the last second, per (node, app, component): a guest's loop of
    bucket calls does not read the node's assignments from etcd on every call. A grant taken away applies to
    calls a second later at most."""

    TTL = 1.0
    MAX = 10_000  # entries held; past it, the cache starts again

    def __init__(self, lookup: Lookup = assigned_component, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[tuple[str, str, str], tuple[float, ComponentAssignment]] = {}
        self._lookup, self._clock = lookup, clock

    async def component(self, store: Store, node: str, app: str, component: str) -> ComponentAssignment:
        key = (node, app, component)
        held = self._held.get(key)
        now = self._clock()
        if held is not None and held[0] > now:
            return held[1]
        comp = await self._lookup(store, node, app, component, "key-value bucket")
        if len(self._held) >= self.MAX:
            self._held.clear()
        self._held[key] = (now + self.TTL, comp)
        return comp


async def key_value(store: Store, request: control_pb2.KeyValueRequest, grants: Grants) -> control_pb2.KeyValueResponse:
    comp = await grants.component(store, request.node, request.app, request.component)
    spec: BucketSpec | None = next((b for b in comp.buckets if b.name == request.bucket), None)
    if spec is None or spec.backend != "cluster":
        raise PermissionDenied(
            f"{request.app}/{request.component} is not granted a cluster bucket {request.bucket!r}",
            bucket=request.bucket,
        )
    if request.op not in OPS:
        raise InvalidArgument(f"op must be one of {', '.join(OPS)}, got {request.op!r}", field="op")
    kv, app, keys = store.kv, request.app, list(request.keys)
    if request.op in ("exists", "read", "increment", "swap") and len(keys) != 1:
        raise InvalidArgument(f"{request.op} takes one key, got {len(keys)}", field="keys")
    if request.op in ("set", "swap") and len(request.values) != len(keys):
        raise InvalidArgument(f"{len(keys)} keys but {len(request.values)} values", field="values")
    reply = control_pb2.KeyValueResponse()
    if request.op == "get":
        values = await kv.get(app, spec, keys)
        reply.values.extend(v or b"" for v in values)
        reply.present.extend(v is not None for v in values)
    elif request.op == "exists":
        reply.exists = (await kv.get(app, spec, keys))[0] is not None
    elif request.op == "read":
        value, reply.version = await kv.read(app, spec, keys[0])
        reply.values.append(value or b"")
        reply.present.append(value is not None)
    elif request.op == "set":
        await kv.write(app, spec, list(zip(keys, request.values, strict=True)))
    elif request.op == "delete":
        await kv.write(app, spec, [(k, None) for k in keys])
    elif request.op == "list":
        page, cursor = await kv.list_keys(app, spec, request.cursor)
        reply.keys.extend(page)
        reply.cursor = cursor
    elif request.op == "increment":
        reply.number = await kv.increment(app, spec, keys[0], request.delta)
    else:  # swap
        reply.swapped = await kv.write(app, spec, [(keys[0], request.values[0])], (keys[0], request.version))
    return reply
