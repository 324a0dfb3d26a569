"""The backup file ``neon backup create`` writes: a tar of ``manifest.json`` and ``etcd.db`` (etcd's snapshot),
and what restoring one needs: reading it back with every check (a truncated, altered or foreign file is refused
before anything is written), and finding the artifacts it lists by their sha256."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

from controlplane.state.snapshot import FORMAT
from neon.errors import InvalidArgument
from neon.security.signing import file_digest

MANIFEST, SNAPSHOT = "manifest.json", "etcd.db"
_MANIFEST_LIMIT = 64 << 20


def write(path: Path, snapshot: Path, manifest: dict[str, Any]) -> None:
    """Write the backup to ``path`` atomically: a crash leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(manifest.get("created_at", 0))
            tar.addfile(info, io.BytesIO(data))
            tar.add(snapshot, arcname=SNAPSHOT)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read(path: Path, into: Path) -> tuple[dict[str, Any], Path]:
    """The manifest, and the snapshot extracted into ``into`` after its size and sha256 were checked."""
    try:
        tar = tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as err:
        raise InvalidArgument(f"{path} is not a Neon Grid backup (not a tar archive: {err})", field="file") from None
    with tar:
        try:
            members = {m.name: m for m in tar.getmembers()}
        except (tarfile.TarError, OSError) as err:
            raise InvalidArgument(f"{path} is truncated or damaged: {err}", field="file") from None
        if sorted(members) != sorted((MANIFEST, SNAPSHOT)) or not all(m.isfile() for m in members.values()):
            raise InvalidArgument(
                f"{path} is not a Neon Grid backup: it holds {sorted(members)[:5]}, not {MANIFEST} and {SNAPSHOT}",
                field="file",
            )
        if members[MANIFEST].size > _MANIFEST_LIMIT:
            raise InvalidArgument(f"{path}: {MANIFEST} is implausibly large", field="file")
        manifest = _manifest(path, tar.extractfile(members[MANIFEST]))
        expected = manifest["snapshot"]
        out = into / SNAPSHOT
        digest, size = hashlib.sha256(), 0
        source = tar.extractfile(members[SNAPSHOT])
        assert source is not None
        try:
            with out.open("wb") as sink:
                while data := source.read(1 << 20):
                    digest.update(data)
                    sink.write(data)
                    size += len(data)
        except (tarfile.TarError, OSError) as err:
            raise InvalidArgument(f"{path} is truncated or damaged: {err}", field="file") from None
    if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
        raise InvalidArgument(
            f"{path}: the etcd snapshot is {size} bytes with sha256 {digest.hexdigest()[:16]}..., the manifest "
            f"says {expected['size']} bytes, {str(expected['sha256'])[:16]}...: the file is truncated or altered",
            field="file",
        )
    return manifest, out


def _manifest(path: Path, raw: Any) -> dict[str, Any]:
    try:
        doc = json.loads(raw.read())
    except (ValueError, AttributeError) as err:
        raise InvalidArgument(f"{path}: {MANIFEST} is not JSON ({err})", field="file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InvalidArgument(f"{path}: a backup of format {got!r}; this neon reads {FORMAT}", field="file")
    snapshot = doc.get("snapshot")
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("size"), int) or not snapshot.get("sha256"):
        raise InvalidArgument(f"{path}: {MANIFEST} does not say the snapshot's size and sha256", field="file")
    wrong = [what for what, ok in _SHAPES.items() if not ok(doc.get(what))]
    if wrong:
        raise InvalidArgument(
            f"{path}: {MANIFEST} is damaged: {', '.join(wrong)} not as `neon backup create` writes them",
            field="file",
        )
    return doc


def _artifact(info: Any) -> bool:
    return (
        isinstance(info, dict)
        and isinstance(info.get("size"), int)
        and isinstance(info.get("used_by"), list)
        and all(isinstance(u, str) for u in info["used_by"])
    )


_SHAPES: dict[str, Callable[[Any], bool]] = {
    "etcd_revision": lambda v: isinstance(v, int),
    "applications": lambda v: isinstance(v, dict) and all(isinstance(g, int) for g in v.values()),
    "nodes": lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
    "artifacts": lambda v: (
        isinstance(v, dict)
        and all(isinstance(d, str) and d.startswith("sha256:") and _artifact(a) for d, a in v.items())
    ),
}


def find_blobs(wanted: dict[str, int], sources: list[Path]) -> dict[str, Path]:
    """Files under ``sources`` holding the wanted artifacts (digest -> size), each checked by its sha256
    (only files of a wanted size are read); digest -> the file."""
    sizes = set(wanted.values())
    found: dict[str, Path] = {}
    for source in sources:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            if len(found) == len(wanted):
                return found
            try:
                if path.stat().st_size not in sizes:
                    continue
                digest = file_digest(path)
            except OSError:
                continue
            if digest in wanted and digest not in found:
                found[digest] = path
    return found
