"""Calls every function of the imported `sink` interface and reports what did not come back equal."""

import math

import wit_world
from componentize_py_types import Err, Ok, Some
from wit_world.imports import sink
from wit_world.imports.sink import Color, Perms, Point, Shape_Circle, Shape_Empty, Shape_Rect


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class WitWorld(wit_world.WitWorld):
    def check_all(self) -> list[str]:
        problems = []

        def check(name, sent, got):
            if not _same(sent, got):
                problems.append(f"{name}: sent {sent!r}, got {got!r}")

        for v in (True, False):
            check("bool", v, sink.echo_bool(v))
        ints = (-128, -32768, -(2**31), -(2**63), 255, 65535, 2**32 - 1, 2**64 - 1)
        check("ints", ints, sink.echo_ints(*ints))
        check("ints-zero", (0,) * 8, sink.echo_ints(*(0,) * 8))
        for floats in ((1.5, 3.141592653589793), (-0.25, -1e300), (math.inf, -math.inf), (math.nan, math.nan)):
            check("floats", floats, sink.echo_floats(*floats))
        for c in ("a", "é", "😀", "\u0000"):
            check("char", c, sink.echo_char(c))
        for s in ("", "hello", "ünïcödé ✓ 😀", "x" * 100_000):
            check("string", s, sink.echo_string(s))
        for b in (b"", bytes(range(256)), b"\x00" * 70_000):
            check("bytes", b, sink.echo_bytes(b))
        for lists in ([], [[]], [["a", "b"], [], ["c"]]):
            check("lists", lists, sink.echo_lists(lists))
        point = Point(x=-7, y=2**31 - 1, label="origin ✓")
        check("record", point, sink.echo_record(point))
        for shape in (Shape_Circle(2.5), Shape_Rect((1.5, -2.0)), Shape_Empty()):
            check("variant", shape, sink.echo_variant(shape))
        for color in Color:
            check("enum", color, sink.echo_enum(color))
        for perms in (Perms(0), Perms.READ, Perms.READ | Perms.EXEC, Perms.READ | Perms.WRITE | Perms.EXEC):
            check("flags", perms, sink.echo_flags(perms))
        for option in (None, 0, 2**32 - 1):
            check("option", option, sink.echo_option(option))
        for nested in (None, Some(None), Some("x")):
            check("nested-option", nested, sink.echo_nested_option(nested))
        check("result-ok", point, sink.echo_result(Ok(point)))
        try:
            got = sink.echo_result(Err("bad point"))
            problems.append(f"result-err: expected Err('bad point'), got ok {got!r}")
        except Err as err:
            check("result-err", "bad point", err.value)
        check("bare-result-ok", None, sink.echo_bare_result(Ok(None)))
        try:
            sink.echo_bare_result(Err(None))
            problems.append("bare-result-err: expected Err(None), got ok")
        except Err as err:
            check("bare-result-err", None, err.value)
        everything = ([point, Point(x=1, y=2, label="")], Shape_Rect((0.5, 0.25)), [Color.BLUE, Color.RED])
        check("all", everything, sink.echo_all(*everything))
        check("all-empty", ([], None, []), sink.echo_all([], None, []))
        check("no-result", None, sink.no_result(7))
        return problems
