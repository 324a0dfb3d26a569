"""Leases kept alive over a few long-lived etcd streams, against a real etcd: many refreshes share them, a
lease's replies come back to its own refreshes, an expired lease says so, and a stream broken by etcd's loss
fails clearly and is opened again when etcd is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.devcluster.etcd_launcher import EtcdServer
from controlplane.state.lease_keeper import STREAMS, LeaseKeeper
from controlplane.state.store import Store
from neon.errors import Unavailable


def test_many_refreshes_share_a_few_streams_and_each_gets_its_own_leases_ttl(tmp_path: Path) -> None:
    with EtcdServer(tmp_path / "etcd") as etcd:

        async def main() -> None:
            store = Store(etcd.url)
            await store.connect()
            keeper = LeaseKeeper(store.client, etcd.url, timeout=10.0)
            try:
                short = [int((await store.client.lease(20)).id) for _ in range(100)]
                long = [int((await store.client.lease(90)).id) for _ in range(100)]
                gone = int((await store.client.lease(20)).id)
                await store.client.revoke_lease(gone)
                leases = short + long
                ttls = await asyncio.gather(*(keeper.refresh(lease) for lease in leases * 3 + [gone]))
                by_lease = dict(zip(leases * 3 + [gone], ttls, strict=True))
                assert {by_lease[lease] for lease in short} == {20}, "a refresh answers its own lease's TTL"
                assert {by_lease[lease] for lease in long} == {90}
                assert by_lease[gone] == 0, "a revoked lease answers 0 (the store raises NotFound for it)"
                assert keeper.opened == STREAMS, f"601 refreshes opened {keeper.opened} streams, not {STREAMS}"
            finally:
                await keeper.close()
                await store.close()

        asyncio.run(main())


def test_a_stream_broken_by_etcds_loss_fails_clearly_and_is_opened_again(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd").start()
    try:

        async def main() -> None:
            store = Store(etcd.url, timeout=1.0)
            await store.connect()
            keeper = LeaseKeeper(store.client, etcd.url, timeout=1.0, retry_for=1.0, streams=1)
            try:
                lease = int((await store.client.lease(60)).id)
                assert await keeper.refresh(lease) == 60
                await asyncio.to_thread(etcd.stop)
                with pytest.raises(Unavailable, match=r"etcd \(http://127\.0\.0\.1:\d+\)"):
                    await keeper.refresh(lease)
                await asyncio.to_thread(etcd.start)
                for _ in range(100):  # etcd answers within seconds of its start; the lease outlived the gap
                    try:
                        assert await keeper.refresh(lease) == 60
                        break
                    except Unavailable:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the lease was not refreshed after etcd came back")
                assert keeper.opened >= 2, "the broken stream was replaced by a new one"
            finally:
                await keeper.close()
                await store.close()
            with pytest.raises(Unavailable, match="shutting down"):
                await keeper.refresh(lease)

        asyncio.run(main())
    finally:
        etcd.stop()
