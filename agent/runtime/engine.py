"""wasmtime at the agent: the engine, the compiled-artifact cache, and instances.

Compiling an 18 MB componentize-py artifact takes seconds, so each artifact is
compiled once per cluster and engine key: the control plane makes it and signs
it, and the agent checks that signature before it loads a byte (a
:class:`CodeSource`); an agent of another kind of machine compiles for itself.
Either way the code is kept on disk, sealed by the node
(:mod:`agent.runtime.code_cache`); a restarted agent deserializes it in about
0.1 s. One whose seal does not hold, or that fails to deserialize, is made
again.

A :class:`ComponentTemplate` is a compiled component with its linker (WASI
and the host functions of its imports) built once; it stamps out
:class:`ComponentInstance` objects, each with its own store. A store is not
thread-safe, so each instance is used by one thread at a time (the pool in
:mod:`agent.runtime.pool` hands them out); different instances run in parallel.

Limits: every store gets a linear-memory cap, and every call an epoch
deadline. A ticker thread advances the engine's epoch every
:data:`EPOCH_TICK` seconds, so an infinite loop traps within one tick of its
deadline, and the instance it ran in is discarded.

Least privilege: a guest sees no host file, environment variable, socket or
stdio beyond what its grants name: granted env vars, and granted volumes,
which are per-application directories under the agent's data directory.
Stdout and stderr go to the agent's log, line by line, with the component's id.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import wasmtime
from wasmtime import component as wc

from agent.runtime.allocator import DEFAULT_POOL, PoolLimits, full_pool_hint, pooled_engine
from agent.runtime.code_cache import CodeCache, code_key
from agent.runtime.denials import DenialLog, wasi_gates
from agent.runtime.functypes import fix_type, pin_type
from agent.runtime.guest_output import GuestOutput
from agent.runtime.rawcall import Plan, set_epoch_deadline
from agent.runtime.traps import HostFunc, first_line, host_func, take_pending, trap_message
from agent.values.signature import Signature
from neon.errors import CallFailed, ComponentError, DeadlineExceeded, NeonGridError, NotFound
from neon.grants import GrantSpec
from neon.native.engine_key import WASMTIME_VERSION, local_key, make_config
from neon.native.tiers import CRANELIFT, cache_name, check_tier
from neon.observe import log
from neon.runtime_spec import RuntimeSpec
from neon.toolchain_exports import TOOLCHAIN_EXPORTS as TOOLCHAIN_REFS

_log = log.get("neon.agent.runtime")

EPOCH_TICK = 0.01  # seconds per epoch tick
# Interfaces the agent's WASI implementation provides; everything else must be linked.
WASI_PREFIXES = ("wasi:",)


class FunctionRef(NamedTuple):
    """An exported function: its interface ('' at the root) and name. A named tuple: one is made and
    looked up several times on every call's path, and a tuple is made and hashed in C."""

    interface: str
    name: str

    def __str__(self) -> str:
        return f"{self.interface}#{self.name}" if self.interface else self.name


# Exports a guest toolchain adds for itself (neon.toolchain_exports), as the references calls resolve to.
TOOLCHAIN_EXPORTS = frozenset(FunctionRef(interface, name) for interface, name in TOOLCHAIN_REFS)


def short_interface(interface: str) -> str:
    """``cyber-systems:logs/parser@0.1.0`` -> ``parser``."""
    return interface.rsplit("/", 1)[-1].split("@", 1)[0]


class WasiHost(Protocol):
    """WASI interfaces the agent implements itself for one component (the front door's wasi:http and what
    shares its resource types), in place of wasmtime's; each instance gets its own state, entered around
    every call into it."""

    interfaces: frozenset[str]  # the versioned interface names it defines

    def define(self, root: wc.LinkerInstance, denials: DenialLog) -> None: ...

    def scope(self) -> AbstractContextManager[Any]: ...


class CodeSource(Protocol):
    """Where native code made elsewhere comes from: the control plane, which compiles once per cluster."""

    def fetch(self, artifact: str, engine: str) -> bytes | None:
        """The code for ``artifact`` on engine key ``engine``, its signature checked; None: compile here. Raises
        NeonGridError when it was refused (and reported) or could not be got."""

    def refused(self, artifact: str, engine: str, reason: str) -> None:
        """Report code that passed its checks but that wasmtime would not load."""


class Runtime:
    """The agent's wasmtime engine and compiled-artifact cache."""

    def __init__(
        self,
        cache_dir: Path,
        pool: PoolLimits | None = DEFAULT_POOL,
        tier: str = CRANELIFT,
        key_file: Path | None = None,
    ) -> None:
        """``key_file``: the key that seals the compiled cache (default ``<cache_dir>.key``, beside it)."""
        self.pool = pool
        self.tier = check_tier(tier)
        self.engine_key = str(local_key(tier))

        self.engine, self.allocator = pooled_engine(lambda: make_config(tier), pool)
        cache_dir = Path(cache_dir)
        key = code_key(key_file or cache_dir.with_name(cache_dir.name + ".key"))
        self.code = CodeCache(cache_dir / cache_name(WASMTIME_VERSION, tier), self.engine_key, key)
        self.source: CodeSource | None = None  # where code made elsewhere comes from (the control plane)
        self._lock = threading.Lock()
        self._loaded: dict[str, wc.Component] = {}
        self._loading: dict[str, threading.Lock] = {}
        self.compiled = 0  # how many artifacts this process compiled (not loaded from the cache)
        self.fetched = 0  # how many it was given compiled (and signed) by the control plane
        self._stop = threading.Event()
        self.longest_ticks = 0  # the longest deadline given to a call, in ticks
        self._ticker = threading.Thread(target=self._tick, name="epoch-ticker", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(EPOCH_TICK):
            self.engine.increment_epoch()
        # Closed: every deadline passes now, so no guest still running (one spinning on a worker thread the
        # process waits for at exit) outlives the runtime.
        for _ in range(self.longest_ticks + 1):
            self.engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()

    def ticks(self, seconds: float) -> int:
        """A deadline of ``seconds`` in epoch ticks, kept if it is the longest given (see :meth:`_tick`)."""
        ticks = max(1, math.ceil(seconds / EPOCH_TICK))
        if ticks > self.longest_ticks:
            self.longest_ticks = ticks
        return ticks

    def load(self, digest: str, wasm_path: Path) -> wc.Component:
        """Return the compiled component for an artifact, compiling at most once per digest."""
        with self._lock:
            if digest in self._loaded:
                return self._loaded[digest]
            digest_lock = self._loading.setdefault(digest, threading.Lock())
        with digest_lock:  # concurrent starts of one artifact wait for a single compile
            with self._lock:
                if digest in self._loaded:
                    return self._loaded[digest]
            component = self._load_uncached(digest, wasm_path)
            with self._lock:
                self._loaded[digest] = component
            return component

    def _load_uncached(self, digest: str, wasm_path: Path) -> wc.Component:
        code = self.code.read(digest)
        if code is not None:
            try:
                return wc.Component.deserialize(self.engine, code)
            except wasmtime.WasmtimeError as err:
                _log.warning("compiled cache entry does not load; recompiling", artifact=digest, error=str(err))
                self.code.remove(digest)
        given = self._given(digest) if self.source is not None else None
        if given is not None:
            return given
        try:
            component = wc.Component(self.engine, wasm_path.read_bytes())
        except wasmtime.WasmtimeError as err:
            reason = full_pool_hint(first_line(err), self.pool)
            raise ComponentError(f"artifact {digest} could not be compiled: {reason}", artifact=digest) from None
        self.code.write(digest, component.serialize())
        self.compiled += 1
        _log.info("compiled artifact", artifact=digest, cache=str(self.code.path(digest)))
        return component

    def _given(self, digest: str) -> wc.Component | None:
        """The artifact's code as the control plane made and signed it, kept sealed; None: compile here (the
        control plane cannot make code for this engine, is away, or its code was refused and reported)."""
        assert self.source is not None
        try:
            code = self.source.fetch(digest, self.engine_key)
        except NeonGridError as err:
            _log.warning("no compiled code from the control plane; compiling here", artifact=digest, error=err.message)
            return None
        if code is None:
            return None
        try:
            component = wc.Component.deserialize(self.engine, code)
        except wasmtime.WasmtimeError as err:
            self.source.refused(digest, self.engine_key, f"wasmtime would not load it: {first_line(err)}")
            return None
        self.code.write(digest, code)
        self.fetched += 1
        _log.info("compiled code fetched", artifact=digest, engine=self.engine_key)
        return component

    def has_code(self, digest: str) -> bool:
        """Whether this runtime has the artifact's code (loaded, or in its compiled cache)."""
        return digest in self._loaded or self.code.has(digest)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._loaded.pop(digest, None)

    def exports(self, component: wc.Component) -> dict[FunctionRef, Any]:
        """Every exported function (root and one level of interfaces) with its FuncType, but a guest
        toolchain's own (:data:`TOOLCHAIN_EXPORTS`): those are neither listed nor invocable."""
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
        return {ref: ty for ref, ty in found.items() if ref not in TOOLCHAIN_EXPORTS}

    def import_names(self, component: wc.Component) -> list[str]:
        """Every import's name, WASI's included."""
        return sorted(component.type.imports(self.engine))

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


class ComponentTemplate:
    """A compiled component, linked once, that stamps out instances.

    Args:
        runtime: The engine owner.
        component: The compiled component.
        label: ``app/component`` for logs and errors.
        imports: Interface name -> function name -> host function, for every
            non-WASI import (local links and remote forwarders).
        settings: Memory limit and per-call deadline.
        grants: Env vars and volumes the guest may see.
        volume_root: Directory holding this application's volumes.
    """

    def __init__(
        self,
        runtime: Runtime,
        component: wc.Component,
        label: str,
        imports: dict[str, dict[str, HostFunc]],
        settings: RuntimeSpec | None = None,
        grants: GrantSpec | None = None,
        volume_root: Path | None = None,
        denials: DenialLog | None = None,
        output: Callable[[str, str], None] | None = None,
        host: WasiHost | None = None,
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.output = output
        self.component = component
        self.label = label
        self.settings = settings or RuntimeSpec()
        self.grants = grants or GrantSpec()
        self.volume_root = volume_root
        self.exports = runtime.exports(component)
        self._signatures: dict[FunctionRef, Signature] = {}
        self._sig_lock = threading.Lock()
        # Looked up once per component, not once per instance: a fresh instance's first call must not pay
        # for reading the export's index and type through the C API again (80 us on a componentize-py guest).
        self._indexes: dict[FunctionRef, Any] = {}
        self._types: dict[FunctionRef, Any] = {}
        self.denials = denials or DenialLog(label)
        self.linker = wc.Linker(runtime.engine)
        self.linker.add_wasip2()
        self.linker.allow_shadowing = True  # what is not granted replaces WASI's own functions
        gates = wasi_gates(runtime.import_names(component), bool(self.grants.volumes))
        with self.linker.root() as root:
            if host is not None:
                host.define(root, self.denials)  # its closure includes the gated interfaces it shares types with
                gates = {iface: gate for iface, gate in gates.items() if iface not in host.interfaces}
            for iface, (capability, names) in sorted(gates.items()):
                with root.add_instance(iface) as inst:
                    for fname in names:
                        inst.add_func(fname, host_func(self.denials.stub(capability)))
            for iface, funcs in sorted(imports.items()):
                if iface == "":
                    for fname, fn in funcs.items():
                        root.add_func(fname, host_func(fn))
                    continue
                with root.add_instance(iface) as inst:
                    for fname, fn in funcs.items():
                        inst.add_func(fname, host_func(fn))
        if self.grants.volumes and volume_root is None:
            raise ComponentError(f"{label} is granted volumes but the agent has no volume directory")

    @property
    def functions(self) -> list[FunctionRef]:
        return sorted(self.exports, key=str)

    def resolve(self, name: str) -> FunctionRef:
        """Find an export by ``func``, ``iface.func``, ``iface#func`` or ``full/iface@v#func``."""
        candidates = []
        iface_part, sep, func = name.rpartition("#") if "#" in name else name.rpartition(".")
        for ref in self.exports:
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
        """The compiled codec of an export (compiled once, shared by all instances)."""
        sig = self._signatures.get(ref)  # read without the lock: on every call's path
        if sig is not None:
            return sig
        with self._sig_lock:
            sig = self._signatures.get(ref)
            if sig is None:
                if ref not in self.exports:
                    raise self.missing(ref)
                sig = Signature.of(self.exports[ref], str(ref))
                self._signatures[ref] = sig
            return sig

    def export_index(self, ref: FunctionRef) -> Any:
        """The component's index of an export, valid in every instance of it (read once)."""
        index = self._indexes.get(ref)
        if index is not None:
            return index
        if ref not in self.exports:
            raise self.missing(ref)
        parent = self.component.get_export_index(ref.interface) if ref.interface else None
        index = self.component.get_export_index(ref.name, parent)
        if index is None:
            raise self.missing(ref)
        return self._indexes.setdefault(ref, index)

    def missing(self, ref: FunctionRef) -> NotFound:
        """What asking for an export it does not have raises."""
        return NotFound(f"{self.label} exports no function {ref}", kind="function", name=str(ref))

    def fix_func_type(self, ref: FunctionRef, func: wc.Func, store: wasmtime.Store) -> None:
        """Make ``func`` (an instance's export ``ref``) answer its type from the one read for the component."""
        fixed = self._types.get(ref)
        if fixed is None:
            self._types.setdefault(ref, fix_type(func, store))
            return
        pin_type(func, fixed)

    def instantiate(self) -> ComponentInstance:
        """A fresh instance in its own store, with this template's limits and grants."""
        store = wasmtime.Store(self.runtime.engine)
        wasi = wasmtime.WasiConfig()
        wasi.stdout_custom = GuestOutput(self.label, "stdout", self.output)
        wasi.stderr_custom = GuestOutput(self.label, "stderr", self.output)
        if self.grants.env:
            wasi.env = sorted(self.grants.env.items())
        for volume in self.grants.volumes:
            assert self.volume_root is not None
            host = self.volume_root / volume.name
            host.mkdir(parents=True, exist_ok=True)
            wasi.preopen_dir(str(host), volume.path, fs_mutable=not volume.read_only)
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.settings.memory_bytes)
        store.set_epoch_deadline(self.runtime.ticks(self.settings.timeout_seconds))  # instantiation runs guest code
        scope = self.host.scope() if self.host is not None else None
        try:
            with scope if scope is not None else contextlib.nullcontext():
                instance = self.linker.instantiate(store, self.component)
        except wasmtime.WasmtimeError as err:
            raise ComponentError(
                f"{self.label} failed to instantiate: "
                + full_pool_hint(trap_message(err, take_pending()), self.runtime.pool),
                component=self.label,
            ) from None
        return ComponentInstance(self, store, instance, scope)


class ComponentInstance:
    """One instance with its own store; used by one thread at a time."""

    def __init__(
        self,
        template: ComponentTemplate,
        store: wasmtime.Store,
        instance: wc.Instance,
        scope: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.template = template
        self.scope = scope  # the host's state of this instance (a WasiHost's), entered around every call
        self.label = template.label
        self.store = store
        self.instance = instance
        self.poisoned = False  # set after a trap: the instance must be discarded
        self.calls = 0
        self._funcs: dict[FunctionRef, wc.Func] = {}
        self._plans: dict[FunctionRef, Plan] = {}

    def call(
        self,
        ref: FunctionRef,
        args: list[Any],
        timeout: float | None = None,
        lift: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Call an export with wasmtime values, trapping after ``timeout`` seconds (default: the template's).

        The result is lifted into Python objects, or read by ``lift`` from wasmtime's C value, given its
        address (:class:`agent.runtime.rawcall.Plan`; a forwarded call's result goes straight to the wire that way)."""
        if self.scope is not None:
            with self.scope:
                return self._call(ref, args, timeout, lift)
        return self._call(ref, args, timeout, lift)

    def _call(self, ref: FunctionRef, args: list[Any], timeout: float | None, lift: Callable[[Any], Any] | None) -> Any:
        limit = self.template.settings.timeout_seconds if timeout is None else timeout
        ticks = self.template.runtime.ticks(limit)
        self.calls += 1
        started = time.monotonic()
        try:
            if lift is None:
                func = self._func(ref)
                set_epoch_deadline(self.store, ticks)
                result = func(self.store, *args)
                func.post_return(self.store)
            else:
                plan = self._plans.get(ref)
                if plan is None:
                    plan = self._plans[ref] = Plan(self._func(ref), self.store)
                result = plan.call(args, ticks, lift)  # post_return included
        except wasmtime.WasmtimeError as err:
            self.poisoned = True
            cause = take_pending()
            if isinstance(cause, NeonGridError):
                raise cause from None
            message = trap_message(err, cause)
            if message == "wasm trap: interrupt":
                took = time.monotonic() - started
                raise DeadlineExceeded(
                    f"{self.label} {ref} ran past its {limit:g}s deadline (stopped after {took:.2f}s); "
                    "the instance was discarded",
                    component=self.label,
                    function=str(ref),
                ) from None
            raise CallFailed(
                f"{self.label} {ref} trapped: {message}", component=self.label, function=str(ref)
            ) from None
        except (TypeError, ValueError) as err:
            raise CallFailed(f"{self.label} {ref}: bad value: {err}", component=self.label, function=str(ref)) from None
        return result

    def _func(self, ref: FunctionRef) -> wc.Func:
        func = self._funcs.get(ref)
        if func is not None:
            return func
        index = self.template.export_index(ref)
        found = self.instance.get_func(self.store, index)
        if found is None:
            raise self.template.missing(ref)
        self.template.fix_func_type(ref, found, self.store)  # its type read once per component, not per call
        self._funcs[ref] = found
        return found
