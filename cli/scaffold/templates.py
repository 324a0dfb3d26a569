"""What ``neon new NAME --lang L`` writes (no I/O): a component project that builds as it is, with one WIT
interface, its implementation in the chosen language, a build file, a manifest and a README.

Every template exports ``local:NAME/greeter@0.1.0`` with ``greet: func(name: string) -> string``, so each
answers ``neon invoke NAME NAME greet '"world"'`` with ``"hello, world!"``.
"""

from __future__ import annotations

import re

from neon.errors import InvalidArgument

LANGS = ("python", "js", "c")
SOURCES = {"python": "src/app.py", "js": "src/component.js", "c": "src/component.c"}
TOOLCHAINS = {
    "python": "componentize-py (PyPI)",
    "js": "componentize-js (npm; needs node and npm)",
    "c": "Zig's clang (the ziglang wheel) and wasm-tools",
}
GREETING = 'greet \'"world"\'           # "hello, world!"'
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*$")


def check_name(name: str) -> str:
    """A project name is a WIT identifier and a DNS label: lowercase words joined by '-', each starting with
    a letter, at most 40 characters."""
    if not _NAME.match(name) or len(name) > 40:
        raise InvalidArgument(
            f"project name {name!r}: use lowercase words joined by '-', each starting with a letter "
            "(e.g. hello, log-tap), at most 40 characters",
            field="name",
        )
    return name


def files(name: str, lang: str, world: str | None = None, invoke: str = "") -> dict[str, str]:
    """Relative path -> text of a new project (``world``: the world its build targets, default the template's;
    ``invoke``: what to try once it is applied, default the greeting)."""
    check_name(name)
    if lang not in LANGS:
        raise InvalidArgument(f"--lang {lang!r}: choose one of {', '.join(LANGS)}", field="lang")
    source = SOURCES[lang]
    return {
        "wit/world.wit": _WIT.format(name=name),
        source: {"python": _PYTHON, "js": _JS, "c": _C}[lang].format(name=name, arena=C_ARENA),
        "neon.yaml": _BUILD.format(name=name, lang=lang, source=source, world=world or name),
        "app.yaml": _MANIFEST.format(name=name),
        "README.md": _README.format(
            name=name,
            lang=lang,
            source=source,
            toolchain=TOOLCHAINS[lang],
            invoke=invoke or GREETING,
        ),
        ".gitignore": "build/\n",
    }


_WIT = """package local:{name}@0.1.0;

interface greeter {{
  greet: func(name: string) -> string;
}}

world {name} {{
  export greeter;
}}
"""

_BUILD = """# How `neon build` builds this component.
name: {name}
lang: {lang}
wit: wit          # the WIT directory
world: {world}    # the world the component targets
source: {source}
"""

_MANIFEST = """apiVersion: neon-grid.dev/v1
kind: Application
metadata:
  name: {name}
spec:
  components:
    - name: {name}
      artifact: build/{name}.wasm   # or, once pushed: oci://REGISTRY/{name}:0.1.0
"""

_PYTHON = '''"""The {name} component (componentize-py): implements the greeter interface of wit/world.wit."""

from wit_world import exports


class Greeter(exports.Greeter):
    def greet(self, name: str) -> str:
        return f"hello, {{name}}!"
'''

_JS = """// The {name} component (componentize-js): implements the greeter interface of wit/world.wit.

export const greeter = {{
  greet(name) {{
    return `hello, ${{name}}!`;
  }},
}};
"""

# The C templates' start: an arena every allocation comes from (emptied by the post-return functions), and the
# cabi_realloc through which the host allocates arguments in it. Text, not a format string.
C_ARENA = """#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

extern unsigned char __heap_base;
static uintptr_t top;

static void *arena_alloc(size_t size, size_t align) {
    if (!top) top = (uintptr_t)&__heap_base;
    uintptr_t start = (top + align - 1) & ~(uintptr_t)(align - 1);
    uintptr_t end = start + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (size_t)-1)
        __builtin_trap();
    top = end;
    return (void *)start;
}

static void copy(char *dst, const char *src, size_t n) {
    while (n--) *dst++ = *src++;
}

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    if (old && new_size <= old_size) return old;
    void *fresh = arena_alloc(new_size, align);
    if (old) copy(fresh, old, old_size);
    return fresh;
}
"""

_C = """/* The {name} component in freestanding C (no libc, no WASI): implements the greeter interface of
 * wit/world.wit, writing the component model's canonical ABI by hand.
 *
 * A string crosses as (pointer, length) in this module's memory. The host allocates the argument through
 * cabi_realloc; the export returns a pointer to (pointer, length) of its answer; the post-return function
 * runs once the host has copied the answer out, and empties the arena every allocation came from.
 */
{arena}
#define GREET "local:{name}/greeter@0.1.0#greet"

static uint32_t answer[2]; /* the returned string: pointer, length */

EXPORT(GREET)
uint32_t *greet(const char *name, size_t len) {{
    static const char hello[] = "hello, ";
    size_t n = sizeof hello - 1;
    char *out = arena_alloc(n + len + 1, 1);
    copy(out, hello, n);
    copy(out + n, name, len);
    out[n + len] = '!';
    answer[0] = (uint32_t)(uintptr_t)out;
    answer[1] = (uint32_t)(n + len + 1);
    return answer;
}}

EXPORT("cabi_post_" GREET)
void greet_post_return(uint32_t *ret) {{
    (void)ret;
    top = 0; /* the host has copied the answer: the arena starts over */
}}
"""

_README = """# {name}

A WebAssembly component ({lang}) for Neon Grid: `wit/` says what it exports, `{source}` implements it.

```bash
neon build {name}                                   # with {toolchain}; writes build/{name}.wasm
neon apply -f {name}/app.yaml --sign-with KEY --wait   # KEY: a publisher key the cluster trusts
neon invoke {name} {name} {invoke}

# or through an OCI registry (./run dev runs one on 127.0.0.1:5000):
neon push {name}/build/{name}.wasm oci://127.0.0.1:5000/{name}:0.1.0 --sign-with KEY
#   then artifact: oci://127.0.0.1:5000/{name}:0.1.0 in app.yaml, and neon apply
```

Change the WIT, then the implementation, and build again; `neon apply` hot-swaps the new version.
"""
