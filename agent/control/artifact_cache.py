"""The agent's artifact store: fetched from the control plane by digest (or, on a node labelled to, pulled from the
artifact's OCI registry), verified, kept on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import AsyncIterator, Callable

from neon.errors import IntegrityError, InvalidArgument, NeonGridError
from neon.manifest import is_digest
from neon.observe import log
from neon.oci.reference import parse
from neon.oci.registry import RegistryClient

_log = log.get("neon.agent.artifacts")


class ArtifactCache:
    """Blobs at ``<root>/sha256-<hex>.wasm``, only ever renamed into place after verification."""

    def __init__(self, root: Path, registry: RegistryClient | None = None) -> None:
        """``registry``: this node pulls ``oci://`` artifacts from their registry itself."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = registry

    async def obtain(self, digest: str, source: str, fetch: Callable[[str], AsyncIterator[bytes]]) -> str:
        """Make sure the blob is here and whole: kept, pulled from ``source`` (when this node pulls from
        registries), or fetched with ``fetch`` (the control plane's stream). Returns which."""
        if await asyncio.to_thread(self.verified, digest):
            return "kept"
        if source and self.registry is not None:
            try:
                await asyncio.to_thread(self.pull, digest, source, self.registry)
            except NeonGridError as err:
                _log.warning(
                    "registry pull failed; fetching from the control plane", artifact=digest, error=err.message
                )
            else:
                _log.info("artifact pulled from its registry", artifact=digest, source=source)
                return "pulled"
        await self.store(digest, fetch(digest))
        _log.info("artifact fetched", artifact=digest)
        return "fetched"

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

    def pull(self, digest: str, source: str, registry: RegistryClient) -> Path:
        """Fetch ``digest`` from the registry the pinned reference ``source`` names (blocking). The manifest must
        still have its pinned digest and its layer be ``digest``; the layer is checked by sha256 as it lands."""
        artifact = registry.resolve(parse(source, allow_latest=True, field="source"))
        if artifact.layer_digest != digest:
            raise IntegrityError(
                f"{source} holds {artifact.layer_digest}, not {digest} that the control plane assigned",
                expected=digest,
                actual=artifact.layer_digest,
            )
        return registry.pull(artifact, self.path(digest))

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
