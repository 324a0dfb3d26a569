"""etcd's history compacted by the leader against a real etcd: revisions older than the one seen an interval
ago are gone, newer ones (what a watch may resume from) are kept, and a second compaction of the same revision
(another leader got there first) is no error. And the raft log etcd holds in memory is bounded: every etcd
the project starts snapshots each 10,000 entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd
import pytest
from aetcd import rpc as aetcd_rpc

from cli.devcluster.etcd_launcher import TUNING, EtcdServer
from controlplane.state.compaction import Compactor
from controlplane.state.store import Store


def test_the_history_before_the_previous_interval_is_compacted(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(etcd.url)
        await store.connect()
        try:
            await store.client.put(b"/neon/x", b"0")
            first = await store.revision()
            for i in range(20):  # heartbeats and reports: history etcd would keep forever
                await store.client.put(b"/neon/x", str(i).encode())
            compactor = Compactor(store, interval=0.2)
            task = asyncio.create_task(compactor.run())
            for _ in range(200):  # the first interval remembers a revision, the second compacts to it
                if compactor.compacted:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            assert compactor.compacted > first, "no compaction within 10 s"
            with pytest.raises(aetcd.ClientError, match="compacted"):  # the history before it is gone
                await store.client.compact(first)
            assert (await store.client.get(b"/neon/x")).value == b"19"  # the data is not
            await compactor.compact(compactor.compacted)  # again (another leader got there first): no error
        finally:
            await store.close()

    with EtcdServer(tmp_path / "etcd") as etcd:
        asyncio.run(run())


def test_the_local_etcd_runs_with_the_memory_tuning(tmp_path: Path) -> None:
    with EtcdServer(tmp_path / "etcd") as etcd:
        assert etcd.process is not None
        argv = Path(f"/proc/{etcd.process.pid}/cmdline").read_bytes().decode().split("\0")
    assert "--snapshot-count=10000" in TUNING
    assert [flag for flag in TUNING if flag not in argv] == [], f"etcd runs without its tuning: {argv}"


def test_after_a_compaction_a_grown_database_is_defragmented_and_shrinks(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(etcd.url)
        await store.connect()
        compactor = Compactor(store)
        try:
            assert not await compactor.defragment(etcd.url)  # small: left alone
            for i in range(40):  # 40 MB of history of one key, all but the last compacted away
                await store.client.put(b"/neon/big", bytes([i % 251]) * (1 << 20))
            status = await store.client.maintenancestub.Status(aetcd_rpc.StatusRequest(), timeout=10)
            await compactor.compact(await store.revision())  # defragments the member after compacting
            after = await store.client.maintenancestub.Status(aetcd_rpc.StatusRequest(), timeout=10)
            assert after.dbSize < status.dbSize / 4, (status.dbSize, after.dbSize)
            assert (await store.client.get(b"/neon/big")).value == bytes([39]) * (1 << 20)
            assert not await compactor.defragment(etcd.url)  # not grown since: left alone
        finally:
            await store.close()

    with EtcdServer(tmp_path / "etcd") as etcd:
        asyncio.run(run())
