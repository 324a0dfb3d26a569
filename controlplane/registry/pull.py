"""Apply's side of ``oci://`` artifacts: each reference resolved to its manifest's digest, the wasm layer pulled
once into the control plane's blob store (checked by size and sha256; agents fetch it from there and need no
registry access), its signatures read from the registry's referrers and kept with it, and the spec rewritten to
name the layer's digest, which the generation pins: a later push to the tag changes nothing until the next apply.
The trust check that follows is the one every artifact gets."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controlplane.security.trust import checked_signatures, merged
from controlplane.state.blobs import BlobStore
from controlplane.state.store import Store
from controlplane.wit.interfaces import describe
from neon.errors import InvalidArgument, NeonGridError, Untrusted
from neon.manifest import AppSpec
from neon.oci.reference import Reference, is_oci, parse
from neon.oci.registry import Artifact, RegistryClient


@dataclass(frozen=True)
class Pulled:
    component: str
    artifact: Artifact
    fetched: bool  # False: the layer was in the blob store already

    def note(self) -> str:
        how = "pulled" if self.fetched else "already stored"
        ref = self.artifact.reference
        named = str(replace(ref, digest="")) if ref.tag else str(ref)
        return (
            f"{self.component}: {named} is manifest {self.artifact.manifest_digest}, layer "
            f"{self.artifact.layer_digest} ({self.artifact.layer_size} bytes, {how})"
        )


class Puller:
    def __init__(self, store: Store, blobs: BlobStore, config: Path | None = None, ca: Path | None = None) -> None:
        self.store, self.blobs, self.config, self.ca = store, blobs, config, ca

    async def resolve(
        self, spec: AppSpec, allow_latest: bool, auths: Mapping[str, Any] | None = None
    ) -> tuple[AppSpec, list[Pulled]]:
        """``spec`` with each ``oci://`` artifact replaced by its layer's digest, and what was pulled; ``auths``:
        credentials from the application's pull secrets (a docker config.json's), before this control plane's."""
        if not any(is_oci(c.artifact) for c in spec.components):
            return spec, []
        with tempfile.TemporaryDirectory(prefix="neon-pull-") as tmp:
            config = self.config
            if auths:
                config = Path(tmp) / "config.json"
                own = (
                    json.loads(self.config.read_text()).get("auths", {})
                    if self.config and self.config.is_file()
                    else {}
                )
                config.touch(mode=0o600)
                config.write_text(json.dumps({"auths": {**own, **auths}}))
            return await self._resolve(spec, allow_latest, RegistryClient(config, self.ca))

    async def _resolve(self, spec: AppSpec, allow_latest: bool, client: RegistryClient) -> tuple[AppSpec, list[Pulled]]:
        done: dict[str, Pulled] = {}
        for i, comp in enumerate(spec.components):
            if not is_oci(comp.artifact) or comp.artifact in done:
                continue
            where = f"spec.components[{i}].artifact"
            try:
                ref = parse(comp.artifact, allow_latest, field=where)
                done[comp.artifact] = await self._pull(client, ref, f"{spec.name}/{comp.name}")
            except NeonGridError as err:
                raise type(err)(f"{where} ({comp.name}): {err.message}", **err.attrs) from None
        pinned = spec.with_artifacts(
            lambda c: done[c.artifact].artifact.layer_digest if is_oci(c.artifact) else c.artifact
        )
        return pinned, list(done.values())

    async def _pull(self, client: RegistryClient, ref: Reference, component: str) -> Pulled:
        artifact = await asyncio.to_thread(client.resolve, ref)
        digest = artifact.layer_digest
        if artifact.layer_size > self.blobs.max_size:
            raise InvalidArgument(
                f"{ref}: the layer is {artifact.layer_size} bytes; this control plane stores at most "
                f"{self.blobs.max_size}",
                field="artifact",
            )
        fetched = not self.blobs.exists(digest)
        if fetched:
            await asyncio.to_thread(client.pull, artifact, self.blobs.path(digest))
        known = await self.store.artifacts.get_artifact(digest)
        try:
            documents = await asyncio.to_thread(client.signatures, artifact)
            new = checked_signatures(digest, documents, str(artifact.reference))
            interfaces = await asyncio.to_thread(describe, self.blobs.path(digest))
        except NeonGridError as err:
            if fetched and known is None:
                self.blobs.remove(digest)  # refused or failed: nothing is left behind
            if isinstance(err, (InvalidArgument, Untrusted)):
                raise InvalidArgument(f"{ref}: {err.message}", field="artifact") from None
            raise
        name = str(artifact.reference)
        await self.store.artifacts.put_artifact(digest, name, artifact.layer_size, interfaces, merged(known, new))
        return Pulled(component, artifact, fetched)
