"""Content-addressed artifact blobs on the control plane's disk.

Blobs live at ``<root>/sha256/<hex>``; the name and size are recorded in etcd
by the caller. A blob is written to a temporary file while it is hashed and
only renamed into place once its digest is known (and matches, when the
uploader announced one), so a crash never leaves a half-written blob behind a
valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import AsyncIterator, Iterator

from neon.errors import ArtifactNotFound, IntegrityError, InvalidArgument

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
CHUNK = 1024 * 1024


def parse_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<hex>`` or raise InvalidArgument."""
    match = _DIGEST.match(digest)
    if not match:
        raise InvalidArgument(
            f"artifact digest must be 'sha256:<64 lowercase hex digits>', got {digest!r}", field="digest"
        )
    return match.group(1)


class BlobStore:
    """A directory of blobs named by their sha256."""

    def __init__(self, root: Path, max_size: int = 512 * 1024 * 1024) -> None:
        self.root = Path(root) / "sha256"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_size = max_size

    def path(self, digest: str) -> Path:
        return self.root / parse_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def store_file(self, path: Path) -> tuple[str, int]:
        """Copy a local file in (for artifacts the control plane makes itself); returns (digest, size)."""
        hasher = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".local-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                while data := src.read(CHUNK):
                    hasher.update(data)
                    out.write(data)
                    size += len(data)
            digest = f"sha256:{hasher.hexdigest()}"
            os.replace(tmp, self.path(digest))
            return digest, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    async def write(self, chunks: AsyncIterator[bytes], expected: str = "") -> tuple[str, int]:
        """Store a stream; returns ``(digest, size)``."""
        if expected:
            parse_digest(expected)
        hasher = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                async for data in chunks:
                    size += len(data)
                    if size > self.max_size:
                        raise InvalidArgument(
                            f"artifact exceeds the {self.max_size // (1024 * 1024)} MiB limit", field="data"
                        )
                    hasher.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            digest = f"sha256:{hasher.hexdigest()}"
            if expected and expected != digest:
                raise IntegrityError(
                    f"upload does not match its announced digest {expected} (got {digest})",
                    expected=expected,
                    actual=digest,
                )
            if size == 0:
                raise InvalidArgument("artifact is empty", field="data")
            os.replace(tmp, self.path(digest))
            return digest, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def read(self, digest: str) -> Iterator[bytes]:
        """Yield the blob in chunks; raises ArtifactNotFound."""
        path = self.path(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(
                f"artifact {digest} is not stored on this control plane; upload it again", kind="artifact", name=digest
            ) from None
        with handle:
            while data := handle.read(CHUNK):
                yield data
