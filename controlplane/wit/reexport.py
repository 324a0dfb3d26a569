"""Re-export interfaces that a composition satisfies internally, by editing its binary (no I/O).

``wasm-tools compose`` makes the fused component export what the root exports.
When one of those exports ``use``s a type defined by an interface that a member
of the group provides (so neither imported nor exported by the whole), the
component-model validator refuses the result: "instance not valid to be used as
export", because an exported type must be nameable from outside. Exporting the
providing instance as well makes its types nameable, which is also what the WIT
says: the fused world then exports ``docs:adder/api`` beside ``docs:calc/hi``.

This module reads the top level of a component binary (nested components and
modules are skipped by size), counts the component-instance index space, finds
the instance passed as ``with "<interface>"`` to an instantiation, and inserts an
export section for it ahead of the existing top-level exports. Only the four
section kinds that add component instances are decoded: import, instance,
alias and export.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from neon.errors import InvalidArgument

PREAMBLE = b"\x00asm\x0d\x00\x01\x00"
_INSTANCE, _ALIAS, _IMPORT, _EXPORT = 5, 6, 10, 11
_SORT_INSTANCE = 0x05
_SORT_CORE = 0x00


@dataclass
class Layout:
    """What the top level of a component says about its component instances."""

    sections: list[tuple[int, int, int]] = field(default_factory=list)  # (id, start, end) incl. header
    instances: int = 0  # size of the component-instance index space
    imported: set[int] = field(default_factory=set)  # instance indices that are imports
    exported: set[str] = field(default_factory=set)  # top-level export names
    # interface name -> instance index it was satisfied with, for every instantiation argument
    arguments: dict[str, int] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("section ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 35:
                raise ValueError("LEB128 integer too long")

    def name(self) -> str:
        size = self.u32()
        if self.pos + size > self.end:
            raise ValueError("name runs past its section")
        text = self.data[self.pos : self.pos + size].decode("utf-8")
        self.pos += size
        return text

    def extern_name(self) -> str:
        tag = self.byte()
        if tag not in (0x00, 0x01):
            raise ValueError(f"unknown import/export name tag {tag:#x}")
        return self.name()

    def sort(self) -> int:
        sort = self.byte()
        if sort == _SORT_CORE:
            self.byte()
        return sort

    def externdesc(self) -> int:
        kind = self.byte()
        if kind == 0x00:  # core module: 0x11 typeidx
            self.byte()
            self.u32()
        elif kind in (0x01, 0x04, 0x05):  # func, component, instance: typeidx
            self.u32()
        elif kind in (0x02, 0x03):  # value or type bound
            if self.byte() == 0x00:
                self.u32()
            elif kind == 0x02:
                self.u32()
        else:
            raise ValueError(f"unknown extern kind {kind:#x}")
        return kind


def _u32(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _name(text: str) -> bytes:
    raw = text.encode()
    return _u32(len(raw)) + raw


def read_layout(data: bytes) -> Layout:
    """Decode the top level; raises InvalidArgument when the binary is not a component."""
    if not data.startswith(PREAMBLE):
        raise InvalidArgument("not a WebAssembly component (bad preamble)")
    layout = Layout()
    pos = len(PREAMBLE)
    try:
        while pos < len(data):
            head = _Reader(data, pos, len(data))
            section = head.byte()
            size = head.u32()
            body, end = head.pos, head.pos + size
            if end > len(data):
                raise ValueError(f"section {section} runs past the end")
            layout.sections.append((section, pos, end))
            _section(layout, section, _Reader(data, body, end))
            pos = end
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"cannot read the component binary: {err}") from None
    return layout


def _section(layout: Layout, section: int, r: _Reader) -> None:
    if section == _IMPORT:
        for _ in range(r.u32()):
            r.extern_name()
            if r.externdesc() == _SORT_INSTANCE:
                layout.imported.add(layout.instances)
                layout.instances += 1
    elif section == _INSTANCE:
        for _ in range(r.u32()):
            if r.byte() == 0x00:  # instantiate componentidx with args
                r.u32()
                for _ in range(r.u32()):
                    arg = r.name()
                    sort = r.sort()
                    index = r.u32()
                    if sort == _SORT_INSTANCE:
                        layout.arguments[arg] = index
            else:  # inline exports
                for _ in range(r.u32()):
                    r.extern_name()
                    r.sort()
                    r.u32()
            layout.instances += 1
    elif section == _ALIAS:
        for _ in range(r.u32()):
            sort = r.sort()
            target = r.byte()
            if target in (0x00, 0x01):
                r.u32()
                r.name()
            else:
                r.u32()
                r.u32()
            if sort == _SORT_INSTANCE:
                layout.instances += 1
    elif section == _EXPORT:
        for _ in range(r.u32()):
            layout.exported.add(r.extern_name())
            sort = r.sort()
            r.u32()
            if r.byte() == 0x01:
                r.externdesc()
            if sort == _SORT_INSTANCE:
                layout.instances += 1


def internal_interfaces(layout: Layout) -> dict[str, int]:
    """Interfaces the composition satisfies with one of its own instances (not an import)."""
    return {name: idx for name, idx in layout.arguments.items() if idx not in layout.imported}


def reexport(data: bytes, names: Iterable[str]) -> bytes:
    """The same component, also exporting each internally satisfied interface in ``names``.

    The new export section goes right before the trailing top-level export
    section, so no index that a later definition refers to moves.
    """
    layout = read_layout(data)
    inside = internal_interfaces(layout)
    wanted = [n for n in dict.fromkeys(names) if n not in layout.exported]
    missing = [n for n in wanted if n not in inside]
    if missing:
        raise InvalidArgument(f"cannot re-export {', '.join(missing)}: the composition does not provide it")
    if not wanted:
        return data
    trailing = [s for s in layout.sections if s[0] != 0]  # custom sections may follow anything
    if not trailing or trailing[-1][0] != _EXPORT:
        raise InvalidArgument("the composed component does not end with its exports; cannot re-export")
    at = trailing[-1][1]
    entries = b"".join(b"\x00" + _name(n) + bytes([_SORT_INSTANCE]) + _u32(inside[n]) + b"\x00" for n in wanted)
    body = _u32(len(wanted)) + entries
    section = bytes([_EXPORT]) + _u32(len(body)) + body
    return data[:at] + section + data[at:]
