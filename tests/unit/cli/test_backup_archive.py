"""The backup file: written atomically, read back only when whole, of this format and unaltered; artifacts
found by their sha256 wherever they lie."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from cli import backup_archive
from neon.errors import InvalidArgument


def _manifest(snapshot: bytes) -> dict[str, object]:
    return {
        "format": backup_archive.FORMAT,
        "etcd_revision": 42,
        "applications": {"shop": 3},
        "nodes": ["edge-1"],
        "artifacts": {"sha256:" + "a" * 64: {"name": "cart", "size": 10, "used_by": ["shop/cart"]}},
        "snapshot": {"size": len(snapshot), "sha256": hashlib.sha256(snapshot).hexdigest()},
    }


def _backup(tmp_path: Path, snapshot: bytes = b"etcd snapshot bytes" * 100) -> Path:
    db = tmp_path / "etcd.db"
    db.write_bytes(snapshot)
    manifest = _manifest(snapshot)
    path = tmp_path / "out" / "cluster.backup"
    backup_archive.write(path, db, manifest)
    return path


def test_a_backup_reads_back_whole(tmp_path: Path) -> None:
    path = _backup(tmp_path)
    assert [p.name for p in path.parent.iterdir()] == ["cluster.backup"], "no temporary file left beside it"
    into = tmp_path / "into"
    into.mkdir()
    manifest, snapshot = backup_archive.read(path, into)
    assert manifest["applications"] == {"shop": 3}
    assert snapshot.read_bytes() == b"etcd snapshot bytes" * 100


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda data: data[:2000], "truncated"),  # inside the snapshot (a tar ends in padding)
        (lambda data: b"", "not a tar archive"),
        (lambda data: b"hello, this is not a backup" * 50, "not a tar archive"),
    ],
)
def test_damaged_files_are_refused(tmp_path: Path, damage: object, words: str) -> None:
    path = _backup(tmp_path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(InvalidArgument, match=words):
        backup_archive.read(path, tmp_path)


def _rewrite(path: Path, manifest: dict[str, object] | None = None, snapshot: bytes | None = None) -> None:
    with tarfile.open(path) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers()}  # type: ignore[union-attr]
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest).encode()
    if snapshot is not None:
        members["etcd.db"] = snapshot
    import io

    with tarfile.open(path, "w") as dst:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            dst.addfile(info, io.BytesIO(body))


def test_foreign_altered_and_other_format_files_are_refused(tmp_path: Path) -> None:
    path = _backup(tmp_path)
    _rewrite(path, snapshot=b"etcd snapshot bytez" * 100)
    with pytest.raises(InvalidArgument, match="truncated or altered"):
        backup_archive.read(path, tmp_path)
    path = _backup(tmp_path)
    _rewrite(path, manifest={"format": "someone-else/v9", "snapshot": {"size": 1, "sha256": "x"}})
    with pytest.raises(InvalidArgument, match="format 'someone-else/v9'"):
        backup_archive.read(path, tmp_path)
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(path, arcname="something-else")
    with pytest.raises(InvalidArgument, match="not a Neon Grid backup"):
        backup_archive.read(foreign, tmp_path)


def test_artifacts_are_found_by_content_wherever_they_lie(tmp_path: Path) -> None:
    blobs = {b"first artifact": tmp_path / "a" / "x.wasm", b"second!": tmp_path / "b" / "deep" / "sha256" / "f00"}
    for body, path in blobs.items():
        path.parent.mkdir(parents=True)
        path.write_bytes(body)
    (tmp_path / "b" / "decoy").write_bytes(b"same size as 2")  # a file of a wanted size, other content
    wanted = {"sha256:" + hashlib.sha256(body).hexdigest(): len(body) for body in blobs}
    wanted["sha256:" + "0" * 64] = 3  # nowhere
    found = backup_archive.find_blobs(wanted, [tmp_path / "a", tmp_path / "b"])
    assert {d: p.read_bytes() for d, p in found.items()} == {
        d: b for b in blobs for d in wanted if d.endswith(hashlib.sha256(b).hexdigest())
    }


@pytest.mark.parametrize(
    "field, value",
    [
        ("artifacts", ["sha256:" + "a" * 64]),
        ("artifacts", {"md5:abc": {"size": 1, "used_by": []}}),
        ("artifacts", {"sha256:" + "a" * 64: {"size": "10", "used_by": ["shop/cart"]}}),
        ("applications", {"shop": "three"}),
        ("nodes", "edge-1"),
        ("etcd_revision", None),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused_by_name(tmp_path: Path, field: str, value: object) -> None:
    """A manifest altered by hand (its snapshot untouched) is refused before a restore relies on it."""
    path = _backup(tmp_path)
    manifest = _manifest(b"etcd snapshot bytes" * 100)
    manifest[field] = value
    _rewrite(path, manifest=manifest)
    with pytest.raises(InvalidArgument, match=f"manifest.json is damaged: {field} not as"):
        backup_archive.read(path, tmp_path)
