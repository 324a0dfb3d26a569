"""The node buckets' ``get`` in native code (``kv_get.c``, beside this file), where the Python host function's
own cost (about 9 µs a call, measured: bench/keyvalue.py) is three times the read it does.

The library is built once per source, value layout and compiler, with the system's C compiler (``$CC``, or
``cc``), into a directory of the agent's own (mode 0700: code it loads is code only the agent writes), and
loaded into the agent. It needs no headers: wasmtime's and SQLite's functions are handed to it from the
libraries the process has loaded (wasmtime-py's, and the SQLite the ``sqlite3`` module uses: one copy of
SQLite in the process, as two would break each other's file locks). Without a compiler, or if the build
fails, every get stays in Python, said once in the log.

A node bucket opened by the library has a slot; a handle to it has a rep naming the slot (and the slot's
generation), so the native get finds it without the agent's tables. Anything the library does not answer
(another backend, a key to refuse, a SQLite error) goes on to the Python get.
"""

from __future__ import annotations

import _sqlite3  # noqa: F401 - loads the SQLite library the sqlite3 module uses, before it is looked up
import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
from ctypes import c_char_p, c_int, c_uint32, c_uint64, c_void_p
from pathlib import Path

from wasmtime import _ffi as ffi
from wasmtime import component as wc

from agent.runtime.glue import Native
from agent.values import clayout
from neon.observe import log

_log = log.get("neon.agent.keyvalue")

SOURCE = Path(__file__).with_name("kv_get.c")
NATIVE_REP = 0x80000000
SLOT_BITS, GENERATIONS = 10, 0x1FFFFF  # a rep: NATIVE_REP | generation << SLOT_BITS | slot (kv_get.c)
BUSY_MS = 2000  # a read waits this long for a writer's lock before it is handed to Python
BUILD_TIMEOUT = 120.0
LIBRARY_ENV = "NEON_KV_LIBRARY"

_WASMTIME = (
    "wasmtime_component_val_new",
    "wasmtime_component_vallist_new_uninit",
    "wasmtime_component_resource_any_to_host",
    "wasmtime_component_resource_any_delete",
    "wasmtime_component_resource_host_rep",
    "wasmtime_component_resource_host_delete",
    "wasmtime_error_delete",
)
_SQLITE = (
    "sqlite3_open_v2",
    "sqlite3_prepare_v2",
    "sqlite3_bind_text",
    "sqlite3_step",
    "sqlite3_column_blob",
    "sqlite3_column_bytes",
    "sqlite3_reset",
    "sqlite3_clear_bindings",
    "sqlite3_finalize",
    "sqlite3_close_v2",
    "sqlite3_busy_timeout",
)


class _Api(ctypes.Structure):
    _fields_ = [(name, c_void_p) for name in _WASMTIME + _SQLITE]


def defines() -> list[str]:
    """The value layout the library is compiled for, as wasmtime-py declares it."""
    kinds = ("U8", "U32", "STRING", "LIST", "OPTION", "RESULT", "RESOURCE")
    return [
        f"-DVAL_SIZE={clayout.VAL}",
        f"-DVAL_OF={clayout.OF}",
        f"-DRESULT_VAL={clayout.RESULT_VAL}",
        *(f"-DKIND_{k}={getattr(ffi, 'WASMTIME_COMPONENT_' + k).value}" for k in kinds),
    ]


def build(directory: Path) -> Path:
    """The library, compiled into ``directory`` unless it is there already (or the one ``$NEON_KV_LIBRARY``
    names, built beforehand: an image without a compiler); raises OSError or subprocess.CalledProcessError if
    it cannot be."""
    if given := os.environ.get(LIBRARY_ENV):
        return Path(given)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise OSError("no C compiler (cc, gcc or $CC) on this node")
    flags = ["-O2", "-shared", "-fPIC", "-std=gnu11", *defines()]
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *flags]).encode()).hexdigest()[:16]
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    target = directory / f"kv_get-{key}.so"
    if not target.exists():
        partial = directory / f".{target.name}.{os.getpid()}.{threading.get_ident()}"
        try:
            subprocess.run(
                [compiler, *flags, "-o", str(partial), str(SOURCE), "-lpthread"],
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT,
            )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


class Library:
    """The loaded library: slots for node buckets, and the native get to register over the Python one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))
        try:
            layout = self._lib.neon_kv_layout
        except AttributeError:
            raise OSError(f"{path} is not a kv_get library of this agent (no neon_kv_layout)") from None
        layout.restype = c_char_p
        built = layout().decode()
        expected = " ".join(d.removeprefix("-D") for d in defines())
        if built != expected:
            raise OSError(f"{path} was built for another wasmtime ({built}; this one: {expected}): build it again")
        api = _Api()
        for name in _WASMTIME:
            setattr(api, name, ctypes.cast(getattr(ffi.dll, name), c_void_p).value)
        sqlite = ctypes.CDLL("libsqlite3.so.0")  # the copy _sqlite3 loaded (same soname: the same handle)
        for name in _SQLITE:
            setattr(api, name, ctypes.cast(getattr(sqlite, name), c_void_p).value)
        self._lib.neon_kv_init.restype = c_int
        slots = self._lib.neon_kv_init(ctypes.byref(api))
        if slots <= 0:
            raise OSError(f"{path.name} could not start (neon_kv_init answered {slots})")
        self._lib.neon_kv_open.argtypes = [c_int, c_uint32, c_char_p, c_int]
        self._lib.neon_kv_close.argtypes = [c_int]
        self._lib.neon_kv_fallback_new.restype = c_void_p
        self._lib.neon_kv_fallback_new.argtypes = [c_void_p, c_void_p, c_void_p]
        self._free = list(range(slots - 1, -1, -1))
        self._generation = 0
        self._lock = threading.Lock()
        lib = self._lib
        self.get = Native(
            ctypes.cast(lib.neon_kv_get, c_void_p).value or 0,
            lambda callback, env, finalize: lib.neon_kv_fallback_new(callback, env, finalize) or 0,
            ctypes.cast(lib.neon_kv_fallback_free, c_void_p).value or 0,
        )

    def open(self, path: Path) -> int | None:
        """The rep of every handle to the bucket at ``path``, read by the library from now on, or None (then
        its gets stay in Python): every slot taken, or SQLite could not open it. Each opening has a new
        generation in its rep: a handle outliving its bucket's slot never reads the slot's next bucket."""
        with self._lock:
            if not self._free:
                return None
            slot = self._free.pop()
            self._generation = self._generation % GENERATIONS + 1
            generation = self._generation
        if self._lib.neon_kv_open(slot, generation, str(path).encode(), BUSY_MS) != 0:
            with self._lock:
                self._free.append(slot)
            return None
        return NATIVE_REP | generation << SLOT_BITS | slot

    def close(self, rep: int) -> None:
        slot = rep & ((1 << SLOT_BITS) - 1)
        self._lib.neon_kv_close(slot)
        with self._lock:
            self._free.append(slot)

    def counts(self) -> tuple[int, int]:
        """Gets answered natively, and handed to Python, since the library was loaded."""
        out = (c_uint64 * 2)()
        self._lib.neon_kv_counts(out)
        return int(out[0]), int(out[1])


def takes_get(fty: wc.FuncType) -> bool:
    """Whether ``fty`` is the get the library answers: (borrow<bucket>, string) -> result<option<list<u8>>, _>."""
    params = [t for _, t in fty.params]
    result = fty.result
    return (
        len(params) == 2
        and isinstance(params[0], wc.BorrowType)
        and params[1] == wc.String()
        and isinstance(result, wc.ResultType)
        and isinstance(result.ok, wc.OptionType)
        and isinstance(result.ok.payload, wc.ListType)
        and result.ok.payload.element == wc.U8()
    )


_state: dict[str, Library | None] = {}
_loading = threading.Lock()


def library(directory: Path) -> Library | None:
    """The library, built in ``directory`` and loaded the first time it is asked for, or None if it cannot
    be. One per process (the first directory asked for): a handle's rep names a slot of that library."""
    with _loading:
        if "library" not in _state:
            found: Library | None = None
            try:
                found = Library(build(directory))
                _log.info("node buckets' get runs natively", library=str(found.path))
            except (OSError, subprocess.SubprocessError) as err:
                stderr = getattr(err, "stderr", b"") or b""
                _log.warning(
                    "node buckets' get stays in Python (about 9 µs a call more)",
                    reason=str(err),
                    compiler_said=stderr.decode(errors="replace")[-2000:],
                )
            _state["library"] = found
        return _state["library"]


if __name__ == "__main__":  # python -m agent.platform.kv_native DIR: build it beforehand (deploy/Dockerfile)
    import sys

    print(Library(build(Path(sys.argv[1]))).path)
