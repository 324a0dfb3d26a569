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
