"""The etcd store against a real etcd: generations, guarded writes, leases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from controlplane.reconciler import plan
from controlplane.store import Store
from neon import manifest
from neon.errors import NotFound
from neon.etcd_server import EtcdServer
from neon.model import NodeInfo

P = "sha256:" + "11" * 32


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data") as server:
        yield server


def _run(etcd: EtcdServer, body: Callable[[Store], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = Store(etcd.url)
        await store.connect()
        try:
            await store.client.delete_prefix(b"/neon/")
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _spec(replicas: int = 1) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "demo"},
            "spec": {"components": [{"name": "one", "artifact": P, "replicas": replicas}]},
        }
    )


def test_generation_grows_only_on_change(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        first = await store.put_app(_spec())
        same = await store.put_app(_spec())
        changed = await store.put_app(_spec(replicas=2))
        assert (first.generation, same.generation, changed.generation) == (1, 1, 2)
        assert changed.created_at == first.created_at
        assert (await store.get_app("demo")).spec.component("one").replicas == 2  # type: ignore[union-attr]
        assert await store.delete_app("demo") and not await store.delete_app("demo")

    _run(etcd, body)


def test_plan_write_is_refused_when_the_app_changed_meanwhile(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        await store.put_app(_spec())
        await store.register_node(NodeInfo("n1", {}, "127.0.0.1:1"), ttl=30)
        world = await store.read_world()
        (app_plan,), _ = plan(world)
        await store.put_app(_spec(replicas=2))  # somebody else writes first
        assert not await store.write_plan(app_plan, world.apps["demo"])
        assert await store.get_placement("demo") is None
        world = await store.read_world()
        (app_plan,), _ = plan(world)
        assert await store.write_plan(app_plan, world.apps["demo"])
        assert (await store.get_placement("demo"))["components"]["one"]["nodes"] == ["n1"]  # type: ignore[index]
        _, docs = await store.node_assignments("n1")
        assert [d["app"] for d in docs] == ["demo"]

    _run(etcd, body)


def test_orphans_are_removed_only_while_the_app_is_absent(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        await store.put_app(_spec())
        await store.register_node(NodeInfo("n1", {}, "127.0.0.1:1"), ttl=30)
        world = await store.read_world()
        (app_plan,), _ = plan(world)
        await store.write_plan(app_plan, world.apps["demo"])
        assert not await store.remove_orphan("demo", frozenset({"n1"}))  # the app still exists
        await store.delete_app("demo")
        _, orphans = plan(await store.read_world())
        assert orphans == [("demo", frozenset({"n1"}))]
        assert await store.remove_orphan("demo", frozenset({"n1"}))
        world = await store.read_world()
        assert not world.assigned and not world.placements

    _run(etcd, body)


def test_node_lease_expires_and_refresh_says_so(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        lease = await store.register_node(NodeInfo("n1", {"tier": "edge"}, "127.0.0.1:1"), ttl=1)
        node = await store.get_node("n1")
        assert node is not None and node.lease_id == lease and node.labels == {"tier": "edge"}
        assert await store.refresh_lease(lease) >= 1
        await store.revoke_lease(lease)
        assert await store.get_node("n1") is None
        with pytest.raises(NotFound):
            await store.refresh_lease(lease)

    _run(etcd, body)


def test_artifacts_and_events(etcd: EtcdServer, tmp_path: Path) -> None:
    from controlplane.events import new_event

    async def body(store: Store) -> None:
        assert await store.get_artifact(P) is None
        await store.put_artifact(P, "demo/one", 10, {"imports": {}, "exports": {}, "wasi": []})
        meta = await store.get_artifact(P)
        assert meta is not None and meta["name"] == "demo/one" and meta["interfaces"]["imports"] == {}
        for i in range(3):
            await store.record(new_event("Test", f"event {i}", app="demo"))
        _, events = await store.recent_events(2)
        assert [e.message for e in events] == ["event 1", "event 2"]

    _run(etcd, body)
