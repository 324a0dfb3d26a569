"""Links checked against the components' own interfaces, before anything is stored.

Pure: given the application and each artifact's interface summary, either
return the capabilities each component needs or raise InvalidManifest naming
the field and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from controlplane.wit.interfaces import Summary, capabilities
from neon.errors import InvalidManifest
from neon.manifest import AppSpec

_UNCROSSABLE = re.compile(r"\b(own|borrow|future|stream)<")


def check_links(spec: AppSpec, summaries: Mapping[str, Summary]) -> dict[str, tuple[str, ...]]:
    """Validate every link and import; returns component -> capabilities its WASI imports need."""
    index = {c.name: i for i, c in enumerate(spec.components)}
    of = {c.name: summaries[c.artifact] for c in spec.components}
    for i, link in enumerate(spec.links):
        path = f"spec.links[{i}]"
        imports = of[link.importer]["imports"]
        exports = of[link.exporter]["exports"]
        if link.import_name not in imports:
            have = ", ".join(sorted(k for k, funcs in imports.items() if k and funcs)) or "nothing besides WASI"
            raise InvalidManifest(
                f"{path}.import: {link.importer} does not import {link.import_name} (it imports: {have})",
                field=f"{path}.import",
            )
        for func, signature in sorted(imports[link.import_name].items()):
            found = _UNCROSSABLE.search(signature)
            if found:
                kind = "resource" if found.group(1) in ("own", "borrow") else found.group(1)
                raise InvalidManifest(
                    f"{path}: {link.import_name}#{func} uses a {kind} ({signature}); resources, streams "
                    "and futures cannot pass between separately running components",
                    field=f"{path}.import",
                )
        if link.import_name not in exports:
            have = ", ".join(sorted(k for k in exports if k)) or "no interfaces"
            raise InvalidManifest(
                f"{path}.exporter: {link.exporter} does not export {link.import_name} (it exports: {have})",
                field=f"{path}.exporter",
            )
        wanted, offered = imports[link.import_name], exports[link.import_name]
        unknown = sorted(set(link.idempotent) - set(wanted) - {"*"})
        if unknown:
            raise InvalidManifest(
                f"{path}.idempotent: {link.import_name} has no function {', '.join(unknown)} "
                f"(it has: {', '.join(sorted(wanted))})",
                field=f"{path}.idempotent",
            )
        for func, signature in sorted(wanted.items()):
            if func not in offered:
                raise InvalidManifest(
                    f"{path}: {link.importer} needs {link.import_name}#{func}, which {link.exporter} does not export",
                    field=f"{path}.exporter",
                )
            if offered[func] != signature:
                raise InvalidManifest(
                    f"{path}: {link.import_name}#{func} does not match: {link.importer} imports {signature}, "
                    f"{link.exporter} exports {offered[func]}",
                    field=f"{path}.exporter",
                )
    linked = {(link.importer, link.import_name) for link in spec.links}
    for comp in spec.components:
        granted = comp.grants.interfaces
        for iface in granted or ():
            if iface not in of[comp.name]["imports"]:
                raise InvalidManifest(
                    f"spec.components[{index[comp.name]}].grants.interfaces names {iface}, which {comp.name} "
                    f"does not import (it imports: {', '.join(sorted(of[comp.name]['imports'])) or 'nothing'})",
                    field=f"spec.components[{index[comp.name]}].grants.interfaces",
                )
        for iface, functions in sorted(of[comp.name]["imports"].items()):
            if not functions:
                continue  # only types (`use`d by other interfaces): the agent provides it as it is
            if granted is not None and iface not in granted:
                if (comp.name, iface) in linked:
                    raise InvalidManifest(
                        f"spec.components[{index[comp.name]}]: {comp.name} is linked on {iface}, which its "
                        "grants.interfaces leaves out; grant it or remove the link",
                        field=f"spec.components[{index[comp.name]}].grants.interfaces",
                    )
                continue  # not granted: absent at runtime (calls trap and are reported)
            if (comp.name, iface) not in linked:
                what = iface or "functions at its root"
                raise InvalidManifest(
                    f"spec.components[{index[comp.name]}]: {comp.name} imports {what}, but no link satisfies it; "
                    f"add to spec.links: {{importer: {comp.name}, import: {iface or '?'}, exporter: <component>}}",
                    field=f"spec.components[{index[comp.name]}]",
                )
    return {c.name: capabilities(of[c.name]) for c in spec.components}
