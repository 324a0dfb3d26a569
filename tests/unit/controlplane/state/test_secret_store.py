"""Secrets in a real etcd: sealed at rest (no value in any stored byte), versions, replace, the key rotation
that seals everything again and drops old keys, the guarded delete, and clear refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Iterator

import pytest

from cli.devcluster.etcd_launcher import EtcdServer
from controlplane.state.keys import SECRET_KEYS, SECRETS
from controlplane.state.secret_store import KEK_PURPOSE, SecretStore
from controlplane.state.store import Store
from neon.errors import AlreadyExists, Conflict, FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from neon.security import pki, sealing

CA = pki.create_ca()
KEK = sealing.derive_key(CA.key, KEK_PURPOSE)
VALUE = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data") as server:
        yield server


def _run(etcd: EtcdServer, body: Callable[[Store], Awaitable[Any]], kek: bytes | None = KEK) -> Any:
    async def main() -> Any:
        store = Store(etcd.url, kek=kek, no_kek="no key here: run with --pki")
        await store.connect()
        try:
            await store.client.delete_prefix(b"/neon/")
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def _raw(store: Store) -> bytes:
    """Every byte under /neon/ as stored."""
    return b"".join(kv.key + kv.value for kv in await store.client.get_prefix(b"/neon/"))


def test_values_are_sealed_at_rest_and_versions_grow(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        info = await store.secrets.put("db", {"password": VALUE, "user": "app"}, replace=False)
        assert (info.name, info.keys, info.version) == ("db", ("password", "user"), 1)
        raw = await _raw(store)
        assert VALUE.encode() not in raw and b'"app"' not in raw, "a value is stored in the clear"
        assert await store.secrets.values("db") == ({"password": VALUE, "user": "app"}, 1)
        with pytest.raises(AlreadyExists, match="--replace"):
            await store.secrets.put("db", {"password": "x"}, replace=False)
        again = await store.secrets.put("db", {"password": "new"}, replace=True)
        assert (again.keys, again.version) == (("password",), 2)
        assert await store.secrets.values("db") == ({"password": "new"}, 2)
        assert await store.secrets.versions() == {"db": 2}
        with pytest.raises(NotFound, match="neon secret create nope"):
            await store.secrets.values("nope")

    _run(etcd, body)


def test_rotation_seals_everything_again_and_drops_the_old_key(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        for name in ("a", "b", "c"):
            await store.secrets.put(name, {"k": f"{VALUE}-{name}"}, replace=False)
        before = {kv.key for kv in await store.client.get_prefix(SECRET_KEYS, keys_only=True)}
        sealed_before = {kv.key: kv.value for kv in await store.client.get_prefix(SECRETS)}
        key_id, count = await store.secrets.rotate()
        assert count == 3
        after = {kv.key for kv in await store.client.get_prefix(SECRET_KEYS, keys_only=True)}
        assert after == {SECRET_KEYS + key_id.encode()} and not (after & before), "old data keys were kept"
        for kv in await store.client.get_prefix(SECRETS):
            doc = json.loads(kv.value)
            assert doc["key_id"] == key_id and kv.value != sealed_before[kv.key]
        for name in ("a", "b", "c"):  # same values and versions, under the new key
            assert await store.secrets.values(name) == ({"k": f"{VALUE}-{name}"}, 1)
        second, count = await store.secrets.rotate()
        assert second != key_id and count == 3 and await _newest(store) == second

    _run(etcd, body)


async def _newest(store: Store) -> str:
    got = await store.client.get_prefix(SECRET_KEYS, keys_only=True)
    return sorted(kv.key[len(SECRET_KEYS) :].decode() for kv in got)[-1]


def test_another_clusters_key_opens_nothing(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        await store.secrets.put("db", {"password": VALUE}, replace=False)
        stranger = SecretStore(store.client, sealing.derive_key(pki.create_ca().key, KEK_PURPOSE))
        with pytest.raises(IntegrityError, match="does not open"):
            await stranger.values("db")

    _run(etcd, body)


def test_without_a_key_secrets_are_refused_with_why(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(FailedPrecondition, match="run with --pki"):
            await store.secrets.put("db", {"password": VALUE}, replace=False)
        assert await store.secrets.list() == []

    _run(etcd, body, kek=None)


def test_delete_is_marked_then_finished_or_undone(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        await store.secrets.put("db", {"password": VALUE}, replace=False)
        revision = await store.secrets.mark_deleting("db")
        info = await store.secrets.get("db")
        assert info is not None and info.deleting
        with pytest.raises(Conflict, match="being deleted"):
            await store.secrets.put("db", {"password": "x"}, replace=True)
        await store.secrets.finish_delete("db", revision, keep=True)  # in use: the mark comes off
        info = await store.secrets.get("db")
        assert info is not None and not info.deleting and await store.secrets.values("db") == ({"password": VALUE}, 1)
        revision = await store.secrets.mark_deleting("db")
        await store.secrets.finish_delete("db", revision, keep=False)
        assert await store.secrets.get("db") is None
        with pytest.raises(NotFound):
            await store.secrets.mark_deleting("db")

    _run(etcd, body)


def test_bad_secrets_are_refused_naming_what(etcd: EtcdServer) -> None:
    async def body(store: Store) -> None:
        cases = [
            ("Bad_Name", {"k": "v"}, "lowercase DNS label"),
            ("db", {}, "no keys"),
            ("db", {"bad key": "v"}, "'bad key' is not a valid key"),
            ("db", {"..": "v"}, "'..' is not a valid key"),
            ("db", {"k": "x" * (64 * 1024 + 1)}, "the value of k is 65537 bytes"),
            ("db", {f"k{i}": "v" for i in range(257)}, "257 keys"),
        ]
        for name, data, message in cases:
            with pytest.raises(InvalidArgument, match=message):
                await store.secrets.put(name, data, replace=False)
        assert await store.secrets.list() == []
        # Kubernetes' keys are taken as they are, a pull secret's .dockerconfigjson among them
        assert (await store.secrets.put("pull", {".dockerconfigjson": "{}"}, replace=False)).keys == (
            ".dockerconfigjson",
        )

    _run(etcd, body)


def test_an_apply_guarded_by_a_secret_that_changed_is_refused(etcd: EtcdServer) -> None:
    from neon import manifest

    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "demo"},
            "spec": {"components": [{"name": "c", "artifact": "sha256:" + "11" * 32}]},
        }
    )

    async def body(store: Store) -> None:
        await store.secrets.put("db", {"password": VALUE}, replace=False)
        info = await store.secrets.get("db")
        assert info is not None
        guard = {SECRETS + b"db": info.revision}
        await store.secrets.mark_deleting("db")  # a delete began after the apply read the secret
        with pytest.raises(Conflict, match="secrets/db changed while demo was applied"):
            await store.put_app(spec, guards=guard)
        assert await store.get_app("demo") is None, "the application was written"

    _run(etcd, body)
