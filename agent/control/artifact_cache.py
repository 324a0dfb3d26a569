"""The agent's artifact store: pulled from the control plane by digest, verified, kept on disk."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import AsyncIterator

from neon.errors import IntegrityError, InvalidArgument
from neon.manifest import is_digest


class ArtifactCache:
    """Blobs at ``<root>/sha256-<hex>.wasm``, only ever renamed into place after verification."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise InvalidArgument(f"not an artifact digest: {digest!r}", field="artifact")
        return self.root / f"{digest.replace(':', '-')}.wasm"

    def verified(self, digest: str) -> bool:
        """True when the blob is on disk and still matches its digest (a corrupt one is removed)."""
        path = self.path(digest)
        if not path.exists():
            return False
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while data := handle.read(1 << 20):
                hasher.update(data)
        if f"sha256:{hasher.hexdigest()}" == digest:
            return True
        path.unlink(missing_ok=True)
        return False

    async def store(self, digest: str, chunks: AsyncIterator[bytes]) -> Path:
        """Write a downloaded stream; raises IntegrityError if it does not hash to ``digest``."""
        target = self.path(digest)
        hasher = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as out:
                async for data in chunks:
                    hasher.update(data)
                    out.write(data)
            actual = f"sha256:{hasher.hexdigest()}"
            if actual != digest:
                raise IntegrityError(
                    f"artifact {digest} arrived as {actual}; refusing it", expected=digest, actual=actual
                )
            os.replace(tmp, target)
            return target
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
