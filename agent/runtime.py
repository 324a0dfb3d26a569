"""wasmtime at the agent: the engine, the compiled-artifact cache, and instances.

Compiling an 18 MB componentize-py artifact takes seconds, so each artifact
is compiled once per wasmtime version and kept on disk (``Component.serialize``);
a restarted agent deserializes it in about 0.1 s. Cache files are written
atomically and named by artifact digest, and one that fails to deserialize is
rebuilt.

A :class:`ComponentInstance` owns one store and instance. A store is not
thread-safe, so calls into one instance are serialized by its lock; different
instances run in parallel worker threads.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import wasmtime
from wasmtime import component as wc

from agent.codec import Signature
from neon import log
from neon.errors import CallFailed, ComponentError, NeonGridError, NotFound

_log = log.get("neon.agent.runtime")

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
# Interfaces the agent's WASI implementation provides; everything else must be linked.
WASI_PREFIXES = ("wasi:",)

HostFunc = Callable[..., Any]


@dataclass(frozen=True)
class FunctionRef:
    """An exported function: its interface ('' at the root) and name."""

    interface: str
    name: str

    def __str__(self) -> str:
        return f"{self.interface}#{self.name}" if self.interface else self.name


def short_interface(interface: str) -> str:
    """``cyber-systems:logs/parser@0.1.0`` -> ``parser``."""
    return interface.rsplit("/", 1)[-1].split("@", 1)[0]


class Runtime:
    """The agent's wasmtime engine and compiled-artifact cache."""

    def __init__(self, cache_dir: Path) -> None:
        self.engine = wasmtime.Engine(wasmtime.Config())
        self.cache_dir = Path(cache_dir) / f"wasmtime-{WASMTIME_VERSION}"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._loaded: dict[str, wc.Component] = {}

    def load(self, digest: str, wasm_path: Path) -> wc.Component:
        """Return the compiled component for an artifact, compiling at most once."""
        with self._lock:
            if digest in self._loaded:
                return self._loaded[digest]
        cached = self.cache_dir / f"{digest.replace(':', '-')}.cwasm"
        component = None
        if cached.exists():
            try:
                component = wc.Component.deserialize(self.engine, cached.read_bytes())
            except wasmtime.WasmtimeError as err:
                _log.warning("compiled cache entry is corrupt; recompiling", artifact=digest, error=str(err))
                cached.unlink(missing_ok=True)
        if component is None:
            try:
                component = wc.Component(self.engine, wasm_path.read_bytes())
            except wasmtime.WasmtimeError as err:
                raise ComponentError(
                    f"artifact {digest} is not a valid component: {_first_line(err)}", artifact=digest
                ) from None
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".cwasm-")
            with os.fdopen(fd, "wb") as out:
                out.write(component.serialize())
            os.replace(tmp, cached)
            _log.info("compiled artifact", artifact=digest, cache=str(cached))
        with self._lock:
            self._loaded[digest] = component
        return component

    def forget(self, digest: str) -> None:
        with self._lock:
            self._loaded.pop(digest, None)

    def exports(self, component: wc.Component) -> dict[FunctionRef, Any]:
        """Every exported function (root and one level of interfaces) with its FuncType."""
        found: dict[FunctionRef, Any] = {}
        for name, ext in component.type.exports(self.engine).items():
            ty = ext.ty
            if isinstance(ty, wc.FuncType):
                found[FunctionRef("", name)] = ty
            elif isinstance(ty, wc.ComponentInstanceType):
                for fname, fext in ty.exports(self.engine).items():
                    fty = fext.ty
                    if isinstance(fty, wc.FuncType):
                        found[FunctionRef(name, fname)] = fty
        return found

    def imports(self, component: wc.Component) -> dict[str, dict[str, Any]]:
        """Non-WASI imported interfaces -> function name -> FuncType."""
        found: dict[str, dict[str, Any]] = {}
        for name, ext in component.type.imports(self.engine).items():
            if name.startswith(WASI_PREFIXES):
                continue
            ty = ext.ty
            if isinstance(ty, wc.ComponentInstanceType):
                found[name] = {f: e.ty for f, e in ty.exports(self.engine).items() if isinstance(e.ty, wc.FuncType)}
            elif isinstance(ty, wc.FuncType):
                found.setdefault("", {})[name] = ty
        return found


class ComponentInstance:
    """One instantiated component with its own store.

    Args:
        runtime: The engine owner.
        component: The compiled component.
        label: ``app/component`` for logs and errors.
        imports: Interface name -> function name -> host function, for every
            non-WASI import (local links and remote forwarders).
    """

    def __init__(
        self, runtime: Runtime, component: wc.Component, label: str, imports: dict[str, dict[str, HostFunc]]
    ) -> None:
        self.label = label
        self.runtime = runtime
        self.lock = threading.Lock()
        self.poisoned = False  # set after a trap: the instance must be replaced
        self._exports = runtime.exports(component)
        self._funcs: dict[FunctionRef, tuple[wc.Func, Signature]] = {}
        self._signatures: dict[FunctionRef, Signature] = {}
        engine = runtime.engine
        linker = wc.Linker(engine)
        linker.add_wasip2()
        with linker.root() as root:
            for iface, funcs in sorted(imports.items()):
                if iface == "":
                    for fname, fn in funcs.items():
                        root.add_func(fname, _host(fn))
                    continue
                with root.add_instance(iface) as inst:
                    for fname, fn in funcs.items():
                        inst.add_func(fname, _host(fn))
        self.store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.stdout_custom = _GuestOutput(label, "stdout")
        wasi.stderr_custom = _GuestOutput(label, "stderr")
        self.store.set_wasi(wasi)
        try:
            self.instance = linker.instantiate(self.store, component)
        except wasmtime.WasmtimeError as err:
            raise ComponentError(f"{label} failed to instantiate: {_first_line(err)}", component=label) from None

    @property
    def functions(self) -> list[FunctionRef]:
        return sorted(self._exports, key=str)

    def resolve(self, name: str) -> FunctionRef:
        """Find an export by ``func``, ``iface.func``, ``iface#func`` or ``full/iface@v#func``."""
        candidates = []
        iface_part, sep, func = name.rpartition("#") if "#" in name else name.rpartition(".")
        for ref in self._exports:
            if not sep:
                if ref.name == name:
                    candidates.append(ref)
            elif ref.name == func and iface_part in (ref.interface, short_interface(ref.interface)):
                candidates.append(ref)
        if len(candidates) == 1:
            return candidates[0]
        listing = ", ".join(str(f) for f in self.functions)
        if not candidates:
            raise NotFound(
                f"{self.label} exports no function {name!r} (exports: {listing})", kind="function", name=name
            )
        raise NotFound(
            f"{name!r} is ambiguous in {self.label}: {', '.join(map(str, candidates))}", kind="function", name=name
        )

    def signature(self, ref: FunctionRef) -> Signature:
        sig = self._signatures.get(ref)
        if sig is None:
            if ref not in self._exports:
                raise NotFound(f"{self.label} exports no function {ref}", kind="function", name=str(ref))
            sig = Signature.of(self._exports[ref], str(ref))
            self._signatures[ref] = sig
        return sig

    def call(self, ref: FunctionRef, args: list[Any]) -> Any:
        """Call an export with wasmtime values; thread-safe."""
        with self.lock:
            func = self._func(ref)
            try:
                result = func(self.store, *args)
                func.post_return(self.store)
            except wasmtime.WasmtimeError as err:
                self.poisoned = True
                cause = _take_pending()
                if isinstance(cause, NeonGridError):
                    raise cause from None
                raise CallFailed(
                    f"{self.label} {ref} trapped: {_trap_message(err, cause)}", component=self.label, function=str(ref)
                ) from None
            except (TypeError, ValueError) as err:
                raise CallFailed(
                    f"{self.label} {ref}: bad value: {err}", component=self.label, function=str(ref)
                ) from None
            return result

    def _func(self, ref: FunctionRef) -> wc.Func:
        cached = self._funcs.get(ref)
        if cached is not None:
            return cached[0]
        if ref not in self._exports:
            raise NotFound(f"{self.label} exports no function {ref}", kind="function", name=str(ref))
        if ref.interface:
            parent = self.instance.get_export_index(self.store, ref.interface)
            index = self.instance.get_export_index(self.store, ref.name, parent)
        else:
            index = self.instance.get_export_index(self.store, ref.name)
        func = self.instance.get_func(self.store, index) if index is not None else None
        if func is None:
            raise NotFound(f"{self.label} exports no function {ref}", kind="function", name=str(ref))
        self._funcs[ref] = (func, self.signature(ref))
        return func


_pending = threading.local()


def _host(fn: HostFunc) -> HostFunc:
    """Adapt ``fn(*args)`` to wasmtime's ``(store, *args)`` host-function convention.

    wasmtime-py parks a host function's Python exception in a process-global
    slot, which races between threads; instead the exception is kept in a
    thread-local and the guest sees a trap carrying its message.
    """

    def call(_store: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - every failure must become a trap
            _pending.error = err
            raise wasmtime.WasmtimeError(str(err)) from None

    return call


def _take_pending() -> Exception | None:
    err = getattr(_pending, "error", None)
    _pending.error = None
    return err


class _GuestOutput:
    """Collects a guest's stdout or stderr and logs it line by line with the component's id."""

    MAX_LINE = 8192

    def __init__(self, label: str, stream: str) -> None:
        self.label = label
        self.stream = stream
        self.pending = b""
        self.log = log.get("neon.guest")

    def __call__(self, data: bytes) -> None:
        self.pending += data
        while b"\n" in self.pending or len(self.pending) > self.MAX_LINE:
            line, sep, rest = self.pending.partition(b"\n")
            if not sep:
                line, rest = self.pending[: self.MAX_LINE], self.pending[self.MAX_LINE :]
            self.pending = rest
            emit = self.log.warning if self.stream == "stderr" else self.log.info
            emit(f"guest {self.stream}", guest=self.label, text=line.decode("utf-8", "replace"))


def _trap_message(err: Exception, cause: Exception | None) -> str:
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    # wasmtime puts the backtrace first and the reason last ("Caused by: ...").
    for i, line in enumerate(lines):
        if line.startswith("Caused by"):
            return "; ".join(lines[i + 1 : i + 3])
    return lines[0] if lines else type(err).__name__


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
