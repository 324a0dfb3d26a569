"""The etcd store against a real etcd: generations, guarded writes, leases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from cli.devcluster.etcd_launcher import EtcdCluster, EtcdServer
from controlplane.reconcile.plan import plan
from controlplane.state.etcd import grpc_target
from controlplane.state.store import Store
from neon import manifest
from neon.errors import NotFound, Unavailable
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


def test_a_node_is_marked_unreachable_with_its_event_or_not_at_all(etcd: EtcdServer) -> None:
    from controlplane.reconcile.events import new_event

    async def body(store: Store) -> None:
        lease = await store.register_node(NodeInfo("n1", {}, "127.0.0.1:1"), ttl=5)
        event = new_event("NodeUnreachable", "n1 lost its lease", node="n1")
        assert not await store.mark_unreachable("n1", 12.0, event)  # it holds its lease: refused, no event
        assert [e for e in (await store.events.recent_events(10))[1] if e.kind == "NodeUnreachable"] == []
        await store.revoke_lease(lease)
        assert await store.mark_unreachable("n1", 12.0, event)
        member = await store.get_member("n1")
        assert member is not None and member[1] == 12.0
        assert [e.id for e in (await store.events.recent_events(10))[1] if e.kind == "NodeUnreachable"] == [event.id]

    _run(etcd, body)


def test_artifacts_and_events(etcd: EtcdServer, tmp_path: Path) -> None:
    from controlplane.reconcile.events import new_event

    async def body(store: Store) -> None:
        assert await store.artifacts.get_artifact(P) is None
        await store.artifacts.put_artifact(P, "demo/one", 10, {"imports": {}, "exports": {}, "wasi": []})
        meta = await store.artifacts.get_artifact(P)
        assert meta is not None and meta["name"] == "demo/one" and meta["interfaces"]["imports"] == {}
        for i in range(3):
            await store.events.record(new_event("Test", f"event {i}", app="demo"))
        _, events = await store.events.recent_events(2)
        assert [e.message for e in events] == ["event 1", "event 2"]

    _run(etcd, body)


def test_grpc_target_for_one_endpoint_or_a_cluster() -> None:
    assert grpc_target("http://127.0.0.1:2379") == "127.0.0.1:2379"
    assert grpc_target("etcd:2379") == "etcd:2379"  # one name: gRPC resolves every record and fails over
    assert grpc_target("http://127.0.0.1:1, http://localhost:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError, match="HOST:PORT"):
        grpc_target("http://127.0.0.1")
    with pytest.raises(ValueError, match="no etcd endpoint"):
        grpc_target(" , ")
    with pytest.raises(ValueError, match="no-such-host.invalid:2 does not resolve"):
        grpc_target("http://127.0.0.1:1,http://no-such-host.invalid:2")


def test_store_survives_the_loss_of_the_member_it_talks_to(tmp_path: Path) -> None:
    with EtcdCluster(tmp_path / "etcd", size=3) as cluster:

        async def main() -> None:
            store = Store(cluster.url, timeout=3)
            await store.connect()
            try:
                await store.put_app(_spec())
                lease = await store.register_node(
                    NodeInfo(name="edge-1", labels={}, dataplane_address="127.0.0.1:1"), ttl=30
                )
                assert await store.refresh_lease(lease) > 0  # its keep-alive stream is open, to the first member
                cluster.members[0].kill()  # pick_first talks to the first member
                # Reads and keep-alives (on a new stream) ride out the new etcd election; the data is all there.
                assert (await store.get_app("demo")).generation == 1  # type: ignore[union-attr]
                assert await store.refresh_lease(lease) > 0
                assert [n.name for n in await store.list_nodes()] == ["edge-1"]
                # A write fails at most briefly (UNAVAILABLE, never a stray error), then lands.
                for _ in range(50):
                    try:
                        assert (await store.put_app(_spec(replicas=2))).generation == 2
                        break
                    except Unavailable:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("no write landed after one member of three was lost")
            finally:
                await store.close()

        asyncio.run(main())

    # With two of three members gone there is no quorum: a clear UNAVAILABLE that names etcd.
    with EtcdCluster(tmp_path / "etcd2", size=3) as cluster:

        async def no_quorum() -> None:
            store = Store(cluster.url, timeout=1)
            await store.connect()
            try:
                await store.put_app(_spec())
                cluster.members[0].kill()
                cluster.members[1].kill()
                with pytest.raises(Unavailable, match=r"etcd \(http://127.0.0.1:\d+,.*\) did not answer"):
                    await store.put_app(_spec(replicas=3))
            finally:
                await store.close()

        asyncio.run(no_quorum())


def test_etcd_picks_fresh_ports_when_a_picked_one_was_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from cli.devcluster import etcd_launcher as etcd_server

    real = etcd_server.free_port
    # A port bound (as by an outgoing connection) between being picked and etcd binding it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        busy = holder.getsockname()[1]
        handed: list[int] = []

        def first_the_busy_one(host: str = "127.0.0.1") -> int:
            handed.append(busy if not handed else real(host))
            return handed[-1]

        monkeypatch.setattr(etcd_server, "free_port", first_the_busy_one)
        with EtcdServer(tmp_path / "single") as server:  # its client port is picked first
            assert server.client_port != busy
        handed.clear()
        with EtcdCluster(tmp_path / "cluster", size=3) as cluster:  # the first member's peer port
            assert busy not in {p for m in cluster.members for p in (m.client_port, m.peer_port)}
            assert (tmp_path / "cluster" / "retry-1").is_dir()


def test_one_watch_wakes_only_the_node_whose_assignments_changed(etcd: EtcdServer) -> None:
    from controlplane.state.assignments import AssignmentHub
    from controlplane.state.keys import ASSIGN

    async def body(store: Store) -> None:
        hub = AssignmentHub(store)
        task = asyncio.create_task(hub.run())
        try:
            with hub.subscribe("edge-1") as one, hub.subscribe("edge-2") as two, hub.subscribe("edge-1") as again:
                assert hub.subscribers == 3
                await asyncio.wait_for(hub.watching.wait(), 10)
                for event in (one, two, again):  # everyone re-reads once the watch opens
                    await asyncio.wait_for(event.wait(), 10)
                    event.clear()
                await store.client.put(ASSIGN + b"edge-1/app", b"{}")
                await asyncio.wait_for(one.wait(), 10)
                await asyncio.wait_for(again.wait(), 10)
                await asyncio.sleep(0.2)
                assert not two.is_set()
                await store.client.put(ASSIGN + b"edge-10/app", b"{}")  # a name that starts the same
                await asyncio.sleep(0.2)
                assert not two.is_set()
            assert hub.subscribers == 0
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    _run(etcd, body)
