"""etcd's history compacted by the leader against a real etcd: revisions older than the one seen an interval
ago are gone, newer ones (what a watch may resume from) are kept, and a second compaction of the same revision
(another leader got there first) is no error. The revision clock every replica keeps says which revision is old
enough, keeps no more samples than an interval needs, and lets a newly elected leader compact at once. And the
raft log etcd holds in memory is bounded: every etcd the project starts snapshots each 10,000 entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd
import pytest
from aetcd import rpc as aetcd_rpc

from cli.devcluster.etcd_launcher import TUNING, EtcdServer
from controlplane.state.compaction import STEPS, Compactor, RevisionClock, sample_revisions
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
            clock = RevisionClock(interval=0.2)
            compactor = Compactor(store, clock)
            tasks = [asyncio.create_task(sample_revisions(store, clock)), asyncio.create_task(compactor.run())]
            for _ in range(200):  # a sample an interval old, then the next step compacts to it
                if compactor.compacted:
                    break
                await asyncio.sleep(0.05)
            for task in tasks:
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
        compactor = Compactor(store, RevisionClock())
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


def test_the_clock_names_the_newest_revision_an_interval_old_and_keeps_only_what_it_needs() -> None:
    clock = RevisionClock(interval=300.0)
    assert clock.step == 300.0 / STEPS
    for minute in range(12):  # a sample a minute, the revision growing by 100 a minute
        clock.note(60.0 * minute, 100 * minute)
    assert clock.due(60.0 * 11) == 600  # sampled at minute 6, five minutes before minute 11
    assert clock.due(60.0 * 11 + 59) == 600
    assert clock.due(60.0 * 12) == 700
    assert len(clock.samples) <= STEPS + 2, f"kept {len(clock.samples)} samples, an interval needs {STEPS + 1}"


def test_a_young_clock_names_nothing_and_a_newly_elected_leader_compacts_with_the_samples_it_holds() -> None:
    clock = RevisionClock(interval=300.0)
    clock.note(0.0, 10)
    assert clock.due(299.0) == 0  # nothing an interval old: nothing to compact
    clock.note(60.0, 20)
    assert clock.due(360.0) == 20  # a follower for 6 minutes, elected now: compacts at once, not an interval later
