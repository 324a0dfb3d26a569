"""The house's shape, checked from the code: no import circle among the project's modules (every import,
function-level and TYPE_CHECKING ones included), no import running up a layer, no module over 500
lines and no class over 300."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("neon", "agent", "controlplane", "cli")
# Layers, lowest first: a module may import from its own layer or a lower one. Longest prefix wins.
LAYERS = {
    "neon": 0,
    "agent": 1,  # the package itself (its __init__ imports nothing)
    "agent.config": 1,
    "agent.state": 1,
    "agent.values": 1,
    "agent.runtime": 2,
    "agent.observe": 3,
    "agent.platform": 3,
    "agent.dataplane": 4,
    "agent.control": 4,
    "agent.linking": 5,
    "agent.http": 5,
    "agent.starter": 5,
    "agent.shell": 6,
    "agent.main": 7,
    "controlplane": 1,
    "controlplane.config": 1,
    "controlplane.placement": 1,
    "controlplane.state": 2,
    "controlplane.security": 3,
    "controlplane.wit": 3,
    "controlplane.reconcile": 4,
    "controlplane.compile": 4,
    "controlplane.registry": 4,
    "controlplane.api": 5,
    "controlplane.process": 6,
    "controlplane.main": 7,
    "cli": 10,
    "neon.__main__": 11,  # `python -m neon`: an entry point the interpreter runs, never imported
}
# Parts of one layer that must not import each other.
APART = (("agent", "controlplane"), ("agent.dataplane", "agent.control"), ("controlplane.security", "controlplane.wit"))


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "_proto" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif node.module in modules:
                    found.add(node.module)
    return found


def _layer(module: str) -> tuple[str, int]:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return prefix, LAYERS[prefix]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, imported in sorted(_graph().items()):
        here, rank = _layer(module)
        for other in sorted(imported):
            there, other_rank = _layer(other)
            apart = any(
                (here.startswith(a) and there.startswith(b)) or (here.startswith(b) and there.startswith(a))
                for a, b in APART
            )
            if other_rank > rank or apart:
                upward.append(f"{module} ({here}, layer {rank}) imports {other} ({there}, layer {other_rank})")
    assert not upward, "imports that run up a layer or across:\n" + "\n".join(upward)


def test_modules_and_classes_stay_small() -> None:
    big = []
    for name, path in sorted(_modules().items()):
        text = path.read_text()
        if len(text.splitlines()) > 500:
            big.append(f"module {name}: {len(text.splitlines())} lines (at most 500)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 300:
                    big.append(f"class {name}.{node.name}: {size} lines (at most 300)")
    assert not big, "\n".join(big)


# Names that stand in several packages because they are the same kind of thing in each: a process's entry
# point, its configuration, its own identity (certificate and keys).
SAME_KIND = {"__init__", "main", "config", "identity"}


def test_a_module_name_means_one_kind_of_thing() -> None:
    where: dict[str, list[str]] = {}
    for name, path in _modules().items():
        stem = path.stem
        where.setdefault(stem, []).append(name)
    shared = {stem: sorted(names) for stem, names in where.items() if len(names) > 1 and stem not in SAME_KIND}
    assert not shared, "modules of one name in several packages (rename one, or add the name to SAME_KIND):\n" + (
        "\n".join(f"{stem}: {', '.join(names)}" for stem, names in sorted(shared.items()))
    )
