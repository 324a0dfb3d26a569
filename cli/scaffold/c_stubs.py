"""The C side of ``neon new NAME --lang c --wit DIR`` (no I/O): every function the world exports, in freestanding
C with the component model's canonical ABI written out, as the C template writes it.

Only what crosses as plain core values is written out: ``bool``, the integers, ``f32``/``f64``, ``char`` and
``string``, as parameters and as the result. A string argument arrives as (pointer, length), allocated by the
host through ``cabi_realloc``; a string result is returned as a pointer to (pointer, length), and the
function's post-return export empties the arena once the host has copied it. A function using any other type
(a list, a record, an option...) is refused, naming it: its memory layout is the component's to write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cli.scaffold.templates import C_ARENA
from neon.errors import InvalidArgument

# WIT type -> (C type of a parameter or result, its zero value)
_SCALARS = {
    "bool": ("uint32_t", "0"),
    "s8": ("int32_t", "0"),
    "u8": ("uint32_t", "0"),
    "s16": ("int32_t", "0"),
    "u16": ("uint32_t", "0"),
    "s32": ("int32_t", "0"),
    "u32": ("uint32_t", "0"),
    "char": ("uint32_t", "32 /* ' ' */"),
    "s64": ("int64_t", "0"),
    "u64": ("uint64_t", "0"),
    "f32": ("float", "0.0f"),
    "f64": ("double", "0.0"),
}
C_KEYWORDS = frozenset(
    "auto bool break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile "
    "while true false".split()
)
MAX_FLAT_PARAMS = 16  # more are passed through memory by the canonical ABI: not written out here


def c_source(project: str, world: str, functions: Sequence[Any], kind_of: Callable[[Any], str]) -> str:
    """The C source implementing ``functions`` (:class:`cli.scaffold.from_wit.Function`)."""
    body = [_HEAD.format(project=project, world=world, arena=C_ARENA)]
    for fn in functions:
        body.append(_function(fn, kind_of))
    return "\n".join(body)


def _c_name(fn: Any) -> str:
    """``IFACE_FUNC``, or ``wit_FUNC`` for the world's own: never a C keyword, nor one of this file's names."""
    prefix = str(fn.interface).replace("-", "_") + "_" if fn.interface else "wit_"
    return prefix + str(fn.name).replace("-", "_")


def _c_param(name: str) -> str:
    arg = name.replace("-", "_")
    return arg + "_" if arg in C_KEYWORDS or arg in ("top", "EMPTY", "ret") else arg


def _check(fn: Any, what: str, ref: Any, kind_of: Callable[[Any], str]) -> str:
    kind = kind_of(ref)
    if kind != "string" and kind not in _SCALARS:
        raise InvalidArgument(
            f"--lang c writes out functions of scalars and strings only; {fn.name}'s {what} is a {kind}: use "
            "--lang python or js for this world, or write that function's canonical ABI by hand",
            field="lang",
        )
    return kind


def _function(fn: Any, kind_of: Callable[[Any], str]) -> str:
    name = _c_name(fn)
    params: list[str] = []
    unused: list[str] = []
    for param, ref in fn.params:
        kind, arg = _check(fn, f"parameter {param}", ref, kind_of), _c_param(param)
        if kind == "string":
            params += [f"const char *{arg}", f"size_t {arg}_len"]
            unused += [arg, f"{arg}_len"]
        else:
            params.append(f"{_SCALARS[kind][0]} {arg}")
            unused.append(arg)
    if len(params) > MAX_FLAT_PARAMS:
        raise InvalidArgument(
            f"{fn.name} takes {len(params)} core values: past {MAX_FLAT_PARAMS} the canonical ABI passes them "
            "through memory; use --lang python or js",
            field="lang",
        )
    signature = ", ".join(params) or "void"
    ignore = "".join(f"    (void){arg};\n" for arg in unused)
    comment = f"/* {fn.name}{' (' + fn.interface + ')' if fn.interface else ''}: write it here */"
    kind = _check(fn, "result", fn.result, kind_of) if fn.result is not None else ""
    post = ""  # the post-return export's parameter: what the function returned
    if not kind:
        code = f'EXPORT("{fn.export}")\nvoid {name}({signature}) {{\n{ignore}    {comment}\n}}\n'
        post = "void"
    elif kind != "string":
        c_type, zero = _SCALARS[kind]
        code = f'EXPORT("{fn.export}")\n{c_type} {name}({signature}) {{\n{ignore}    return {zero}; {comment}\n}}\n'
        post = f"{c_type} ret"
    else:
        code = (
            f"static uint32_t {name}_answer[2]; /* the returned string: pointer, length */\n\n"
            f'EXPORT("{fn.export}")\nuint32_t *{name}({signature}) {{\n{ignore}'
            f"    {name}_answer[0] = (uint32_t)(uintptr_t)EMPTY; {comment}\n"
            f"    {name}_answer[1] = 0;\n    return {name}_answer;\n}}\n"
        )
        post = "uint32_t *ret"
    if not any("const char *" in p for p in params) and kind != "string":
        return code  # nothing was allocated for the call
    used = "    (void)ret;\n" if post != "void" else ""
    return code + (
        f'\nEXPORT("cabi_post_{fn.export}")\nvoid {name}_post_return({post}) {{\n{used}'
        "    top = 0; /* the call is over and its answer copied out: the arena starts over */\n}\n"
    )


_HEAD = """/* The {project} component in freestanding C (no libc, no WASI): implements world {world} of wit/,
 * writing the component model's canonical ABI by hand. Each function answers its result's zero value
 * until it is written.
 *
 * A string crosses as (pointer, length) in this module's memory: an argument is allocated by the host through
 * cabi_realloc; a string result is returned as a pointer to (pointer, length), and the function's
 * post-return export empties the arena (every allocation came from it) once the host has copied it out.
 */
{arena}
static const char EMPTY[1] __attribute__((unused)) = "";
"""
