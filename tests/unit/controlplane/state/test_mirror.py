"""The read mirror against a real etcd: what it serves equals what etcd holds, a write by another replica is
seen by the next fresh read, and reads go to etcd while its watch is not open."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

from cli.devcluster.etcd_launcher import EtcdServer
from controlplane.state.mirror import Mirror, View, read_view
from controlplane.state.store import Store
from neon import manifest
from neon.model import InstanceReport, NodeInfo

P = "sha256:" + "22" * 32


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data") as server:
        yield server


def _spec(name: str, replicas: int = 1) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": name},
            "spec": {"components": [{"name": "one", "artifact": P, "replicas": replicas}]},
        }
    )


def _node(name: str) -> NodeInfo:
    return NodeInfo(name=name, labels={"tier": "edge"}, dataplane_address="127.0.0.1:1")


@contextlib.asynccontextmanager
async def _stores(etcd: EtcdServer) -> AsyncIterator[tuple[Store, Store, Mirror]]:
    """A store with a running mirror (this replica), and a second store (another replica's writes)."""
    mine, other = Store(etcd.url), Store(etcd.url)
    await mine.connect()
    await other.connect()
    await other.client.delete_prefix(b"/neon/")
    mirror = Mirror(mine, catch_up=5.0)
    task = asyncio.create_task(mirror.run())
    try:
        for _ in range(500):
            if mirror.open:
                break
            await asyncio.sleep(0.01)
        assert mirror.open, "the mirror's watch did not open within 5 s"
        yield mine, other, mirror
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await mine.close()
        await other.close()


def _same(a: View, b: View) -> dict[str, Any]:
    """The tables where two views differ (empty: none)."""
    return {
        name: (getattr(a, name), getattr(b, name))
        for name in ("apps", "nodes", "members", "placements", "status", "leader")
        if getattr(a, name) != getattr(b, name)
    }


def test_a_fresh_read_sees_every_write_another_replica_finished_and_equals_etcd(etcd: EtcdServer) -> None:
    async def body() -> None:
        async with _stores(etcd) as (mine, other, mirror):
            lease = await other.register_node(_node("edge-1"), ttl=30)
            await other.register_node(_node("edge-2"), ttl=30)
            node = NodeInfo(**{**_node("edge-1").to_dict(), "lease_id": lease})
            for replicas in range(1, 21):
                await other.put_app(_spec("demo", replicas))
                seen = (await mirror.view()).apps["demo"].spec.component("one").replicas
                assert seen == replicas, f"a fresh read after generation {replicas} saw {seen} replicas"
            await other.reports.put_status(
                node, [InstanceReport(app="demo", component="one", artifact=P, state="Running")]
            )
            await other.client.put(b"/neon/leader", b'{"identity": "cp-2"}')
            assert not _same(await mirror.view(), await read_view(other))
            assert (await mirror.view()).status["edge-1"][0].state == "Running"
            await other.delete_app("demo")
            await other.revoke_lease(lease)  # the node's key and its status go with the lease
            view = await mirror.view()
            assert "demo" not in view.apps and "edge-1" not in view.nodes and "edge-1" not in view.status
            assert set(view.unreachable()) == {"edge-1"}, "a member without a lease is Unreachable"
            assert not _same(view, await read_view(other))
            assert mirror.fallbacks == 0, "every read was served from the copy"

    asyncio.run(body())


def test_writes_outside_the_tables_keep_the_copy_current(etcd: EtcdServer) -> None:
    """etcd's revision moves with any key; a read after writes of other keys (events, an unrelated tenant)
    must not wait for a change of the tables that never comes."""

    async def body() -> None:
        async with _stores(etcd) as (mine, other, mirror):
            for i in range(5):
                await other.client.put(f"/elsewhere/{i}".encode(), b"x")
                await other.client.put(f"/neon/events/{i:020d}".encode(), b"{}")
                await asyncio.wait_for(mirror.view(), 1.0)
            assert mirror.fallbacks == 0
            assert mirror.revision >= await other.revision()

    asyncio.run(body())


def test_reads_go_to_etcd_while_the_watch_is_not_open(etcd: EtcdServer, tmp_path: Path) -> None:
    async def body() -> None:
        store = Store(etcd.url)
        await store.connect()
        try:
            await store.client.delete_prefix(b"/neon/")
            await store.put_app(_spec("direct"))
            mirror = Mirror(store)  # never run: its watch is not open
            view = await mirror.view()
            assert "direct" in view.apps and mirror.fallbacks == 1
            assert "direct" in (await mirror.view(fresh=False)).apps and mirror.fallbacks == 2
        finally:
            await store.close()

    asyncio.run(body())
