"""Cluster buckets against a real etcd: the bucket's size follows every write and the limit holds, and a write
that leaves the size as it was writes only its keys (the size key keeps its revision) and does not conflict with
writers of other keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cli.devcluster.etcd_launcher import EtcdServer
from controlplane.state.keys import KV_SIZE, etcd_key
from controlplane.state.kv_store import KvStore
from controlplane.state.store import Store
from neon.bucket_spec import BucketSpec
from neon.errors import ResourceExhausted

SPEC = BucketSpec(name="counts", backend="cluster", max_value_bytes=64, max_bytes=100)


def test_the_size_moves_only_when_a_write_moves_it(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(etcd.url)
        await store.connect()
        kv = KvStore(store.client)
        size_key = etcd_key(KV_SIZE, "app", SPEC.name)

        async def size() -> tuple[int, int]:
            got = await store.client.get(size_key)
            assert got is not None
            return int(json.loads(got.value)["bytes"]), int(got.mod_revision)

        try:
            assert await kv.write("app", SPEC, [("a", b"0001")])
            used, revision = await size()
            assert used == 1 + 4
            for count in range(2, 6):  # as long as before: only the key is written
                assert await kv.write("app", SPEC, [("a", b"%04d" % count)])
            assert await size() == (5, revision), "a same-length value rewrote the bucket's size"
            assert await kv.get("app", SPEC, ["a"]) == [b"0005"]
            assert await kv.write("app", SPEC, [("a", b"123456")])  # longer: the size moves
            assert (await size())[0] == 1 + 6
            assert await kv.write("app", SPEC, [("b", b"x" * 10), ("a", None)])  # a new key, one gone
            assert (await size())[0] == 1 + 10
            with pytest.raises(ResourceExhausted):
                await kv.write("app", SPEC, [("c", b"y" * 64), ("d", b"z" * 30)])  # over the bucket's 100 bytes
            assert (await size())[0] == 1 + 10  # nothing of the refused write stayed
            # Same-length writers of different keys at once: none waits for or undoes another.
            await kv.write("app", SPEC, [(k, b"0") for k in "pqrs"])
            before = await size()
            results = await asyncio.gather(*(kv.write("app", SPEC, [(k, b"1")]) for k in "pqrs"))
            assert all(results) and await size() == before
        finally:
            await store.close()

    with EtcdServer(tmp_path / "etcd") as etcd:
        asyncio.run(run())
