"""Cluster key-value buckets in etcd: what components' wasi:keyvalue calls reach through their agents.

    /neon/kv/<app>/<bucket>/<key>     the value (bytes)
    /neon/kvsize/<app>/<bucket>       {"bytes": keys and values held}

Every write is one transaction that also moves the bucket's size, guarded by the mod revisions it read, so the
limits hold under concurrent writers and a component cannot fill etcd (a write over ``maxSize`` is refused). A
write that leaves the size as it was (a value replaced by one as long, the common case of a count or a status)
writes only its keys: half the key versions etcd keeps in its history, and no conflict with writers of other
keys. A
key's version (for compare-and-swap) is its etcd mod revision. An application's buckets go with it.
"""

from __future__ import annotations

import json

from aetcd.utils import prefix_range_end

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import KV, KV_SIZE, dump, etcd_key
from neon.bucket_spec import BucketSpec, counter_bytes, counter_value, key_problem, size_problem, value_problem
from neon.errors import Conflict, InvalidArgument, ResourceExhausted

PAGE = 1000
MAX_BATCH = 100  # keys one call may name (etcd takes 128 operations in one transaction)


def _check(spec: BucketSpec, keys: list[str], values: list[bytes] | None = None) -> None:
    if len(keys) > MAX_BATCH:
        raise InvalidArgument(f"one call may name at most {MAX_BATCH} keys, got {len(keys)}", field="keys")
    for key in keys:
        if problem := key_problem(key):
            raise InvalidArgument(problem, field="keys")
    for key, value in zip(keys, values or [], strict=False):
        if problem := value_problem(spec, key, value):
            raise ResourceExhausted(problem, bucket=spec.name)


def _check_size(spec: BucketSpec, used: int) -> None:
    if problem := size_problem(spec, used):
        raise ResourceExhausted(problem, bucket=spec.name)


class KvStore:
    """The cluster buckets' keys."""

    def __init__(self, client: EtcdCalls) -> None:
        self.client = client

    def _key(self, app: str, bucket: str, key: str = "") -> bytes:
        return etcd_key(KV, app, bucket) + b"/" + key.encode()

    async def get(self, app: str, spec: BucketSpec, keys: list[str]) -> list[bytes | None]:
        _check(spec, keys)
        tx = self.client.transactions
        _, ranges = await self.client.transaction(
            compare=[], success=[tx.get(self._key(app, spec.name, key)) for key in keys], failure=[]
        )
        return [bytes(found[0][0]) if found else None for found in ranges]

    async def read(self, app: str, spec: BucketSpec, key: str) -> tuple[bytes | None, int]:
        _check(spec, [key])
        got = await self.client.get(self._key(app, spec.name, key))
        return (bytes(got.value), int(got.mod_revision)) if got else (None, 0)

    async def list_keys(self, app: str, spec: BucketSpec, cursor: str) -> tuple[list[str], str]:
        prefix = self._key(app, spec.name)
        start = prefix + cursor.encode() + b"\0" if cursor else prefix
        # A bucket is at most maxSize (1 MiB by default, 64 MiB at most): read from the cursor on, in key order.
        got = await self.client.get_range(start, prefix_range_end(prefix))
        keys = [bytes(kv.key)[len(prefix) :].decode() for kv in got][: PAGE + 1]
        return keys[:PAGE], (keys[PAGE - 1] if len(keys) > PAGE else "")

    async def write(
        self, app: str, spec: BucketSpec, pairs: list[tuple[str, bytes | None]], guard: tuple[str, int] | None = None
    ) -> bool:
        """Set (None: delete) every pair in one transaction within the bucket's size; with ``guard`` (a key of
        ``pairs``, and a version) only while that key is at that version (False when it is not)."""
        keys = [k for k, _ in pairs]
        _check(spec, keys, [v for _, v in pairs if v is not None])
        tx = self.client.transactions
        size_key = etcd_key(KV_SIZE, app, spec.name)
        for _ in range(20):
            size = await self.client.get(size_key)
            used = before = int(json.loads(size.value)["bytes"]) if size else 0
            compare = [tx.mod(size_key) == size.mod_revision] if size else [tx.version(size_key) == 0]
            ops = []
            versions: dict[str, int] = {}
            for key, value in pairs:
                full = self._key(app, spec.name, key)
                old = await self.client.get(full)
                versions[key] = int(old.mod_revision) if old else 0
                if old:
                    used -= len(key.encode()) + len(old.value)
                    compare.append(tx.mod(full) == old.mod_revision)
                else:
                    compare.append(tx.version(full) == 0)
                if value is None:
                    ops.append(tx.delete(full))
                else:
                    used += len(key.encode()) + len(value)
                    ops.append(tx.put(full, value))
            if guard is not None and versions[guard[0]] != guard[1]:
                return False
            _check_size(spec, used)
            if used == before:  # values replaced by ones as long: the size stays, neither written nor guarded
                del compare[0]
            else:
                ops.append(tx.put(size_key, dump({"bytes": used})))
            ok, _ = await self.client.transaction(compare=compare, success=ops, failure=[])
            if ok:
                return True
        raise Conflict(f"bucket {spec.name} kept changing while it was written; retry", bucket=spec.name)

    async def increment(self, app: str, spec: BucketSpec, key: str, delta: int) -> int:
        """Add ``delta`` to the counter under ``key`` (8 bytes, little-endian; absent: 0): two reads and one
        transaction guarded by both, again if another writer got there first."""
        _check(spec, [key])
        tx = self.client.transactions
        full, size_key = self._key(app, spec.name, key), etcd_key(KV_SIZE, app, spec.name)
        for _ in range(20):
            size, old = await self.client.get(size_key), await self.client.get(full)
            number = _counter(bytes(old.value) if old else None, key) + delta
            data = counter_bytes(number)
            if data is None:
                raise InvalidArgument(f"{key!r} would leave the range of a signed 64-bit integer", field="delta")
            used = (int(json.loads(size.value)["bytes"]) if size else 0) + (0 if old else len(key.encode()) + 8)
            _check_size(spec, used)
            # An existing counter keeps its size: only a new one moves the bucket's (and is guarded by it).
            compare = [tx.mod(full) == old.mod_revision] if old else [tx.version(full) == 0]
            ops = [tx.put(full, data)]
            if not old:
                compare.append(tx.mod(size_key) == size.mod_revision if size else tx.version(size_key) == 0)
                ops.append(tx.put(size_key, dump({"bytes": used})))
            ok, _ = await self.client.transaction(compare=compare, success=ops, failure=[])
            if ok:
                return number
        raise Conflict(f"{key!r} in bucket {spec.name} kept changing while it was incremented; retry")

    async def delete_app(self, app: str) -> None:
        """An application's buckets, gone with it."""
        await self.client.delete_prefix(etcd_key(KV, app) + b"/")
        await self.client.delete_prefix(etcd_key(KV_SIZE, app) + b"/")


def _counter(value: bytes | None, key: str) -> int:
    number = counter_value(value)
    if number is None:
        raise InvalidArgument(f"{key[:80]!r} holds {len(value or b'')} bytes, not a counter (8 bytes, little-endian)")
    return number
