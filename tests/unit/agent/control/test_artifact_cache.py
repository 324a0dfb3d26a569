"""Artifacts are content-addressed and verified on both sides."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.control.artifact_cache import ArtifactCache
from controlplane.state.blobs import BlobStore, parse_digest
from neon.errors import ArtifactNotFound, IntegrityError, InvalidArgument


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blob_store_writes_by_digest_and_refuses_mismatch(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_size=16)
    digest, size = asyncio.run(store.write(_chunks(b"hello ", b"world")))
    assert (digest, size) == (_digest(b"hello world"), 11)
    assert b"".join(store.read(digest)) == b"hello world"
    with pytest.raises(IntegrityError):
        asyncio.run(store.write(_chunks(b"other"), expected=digest))
    with pytest.raises(InvalidArgument, match="limit"):
        asyncio.run(store.write(_chunks(b"x" * 17)))
    with pytest.raises(ArtifactNotFound):
        list(store.read(_digest(b"missing")))
    assert sorted(p.name for p in (tmp_path / "sha256").iterdir()) == [digest.split(":")[1]]


def test_digests_cannot_name_paths() -> None:
    for bad in ("sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:abc", ""):
        with pytest.raises(InvalidArgument):
            parse_digest(bad)


def test_agent_cache_verifies_downloads_and_drops_corrupt_files(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    good = _digest(b"component bytes")
    with pytest.raises(IntegrityError, match="refusing"):
        asyncio.run(cache.store(good, _chunks(b"tampered bytes")))
    assert not cache.path(good).exists() and list(tmp_path.iterdir()) == []
    path = asyncio.run(cache.store(good, _chunks(b"component ", b"bytes")))
    assert cache.verified(good)
    path.write_bytes(b"bit rot")
    assert not cache.verified(good) and not path.exists()


def test_a_node_that_pulls_from_registries_pulls_checks_and_falls_back(tmp_path: Path) -> None:
    """``obtain``: kept when verified; pulled when this node pulls and the registry holds the assigned digest;
    fetched from the control plane otherwise, also when the registry fails or holds other bytes."""
    from cli.devcluster.registry_launcher import RegistryServer
    from neon.oci.reference import parse
    from neon.oci.registry import RegistryClient

    body, other = b"\0asm component bytes", b"\0asm other bytes"
    wasm = tmp_path / "c.wasm"
    fetched: list[str] = []

    def fetch(digest: str) -> AsyncIterator[bytes]:
        fetched.append(digest)
        return _chunks(body)

    with RegistryServer(tmp_path / "registry") as registry:
        wasm.write_bytes(body)
        pinned = str(RegistryClient().push(wasm, parse(f"oci://{registry.host}/c:1")).reference)
        wasm.write_bytes(other)
        elsewhere = str(RegistryClient().push(wasm, parse(f"oci://{registry.host}/other:1")).reference)
        cache = ArtifactCache(tmp_path / "a", RegistryClient())
        assert asyncio.run(cache.obtain(_digest(body), pinned, fetch)) == "pulled" and fetched == []
        assert asyncio.run(cache.obtain(_digest(body), pinned, fetch)) == "kept"
        cache.path(_digest(body)).unlink()
        # The reference holds other bytes than the control plane assigned: refused, fetched instead.
        assert asyncio.run(cache.obtain(_digest(body), elsewhere, fetch)) == "fetched" and len(fetched) == 1
        cache.path(_digest(body)).unlink()
    # The registry is gone: fetched from the control plane.
    assert asyncio.run(cache.obtain(_digest(body), pinned, fetch)) == "fetched" and len(fetched) == 2
    # A node that does not pull from registries never asks one.
    plain = ArtifactCache(tmp_path / "b")
    assert asyncio.run(plain.obtain(_digest(body), pinned, fetch)) == "fetched" and len(fetched) == 3
    assert cache.verified(_digest(body)) and plain.verified(_digest(body))
