"""``wasi:keyvalue`` (store, atomics, batch; ``0.2.0-draft2``, as Spin 3 ships it) for one component: ``open``
gives a bucket the component is granted (``grants.keyValue``), backed as the application declares it
(:mod:`agent.platform.kv_buckets`). Opening any other answers ``access-denied`` and is reported as a capability
denial. A limit or a failing backend answers ``other`` with the reason. The bucket and cas resources live in
the calling instance's table (:mod:`agent.runtime.glue`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import wasmtime
from wasmtime import component as wc
from wasmtime.component import Variant

from agent.platform.kv_buckets import Bucket, KvRefused
from agent.platform.kv_native import Library, takes_get
from agent.runtime.denials import DenialLog
from agent.runtime.glue import (
    HostTrap,
    Impl,
    Native,
    Table,
    current,
    define_instances,
    imported_instances,
    resource_groups,
    using,
)
from neon.observe import log

_log = log.get("neon.agent.keyvalue")

PREFIX = "wasi:keyvalue/"
STORE, ATOMICS, BATCH = "wasi:keyvalue/store", "wasi:keyvalue/atomics", "wasi:keyvalue/batch"
TYPE_IDS = 1000  # host resource type ids from here: apart from the wasi:http host's, in the same linker


def uses_keyvalue(import_names: list[str]) -> bool:
    return any(name.startswith(PREFIX) for name in import_names)


class Cas:
    """A compare-and-swap handle: the key and the version its current value was read at."""

    def __init__(self, bucket: Bucket, key: str, value: bytes | None, version: int) -> None:
        self.bucket, self.key, self.value, self.version = bucket, key, value, version


def _ok(payload: Any = None) -> Variant:
    return Variant("ok", payload)


def _other(message: str) -> Variant:
    return Variant("err", Variant("other", message))


class KeyValueHost:
    """The wasi:keyvalue interfaces one component imports, defined by the agent (a
    :class:`agent.runtime.engine.WasiHost`). ``buckets``: name -> what opens it, for those it is granted."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        component: wc.Component,
        label: str,
        buckets: Mapping[str, Callable[[], Bucket]],
        native: Library | None = None,
    ) -> None:
        self.label = label
        self.buckets = buckets
        self.native = native
        self._items = {k: v for k, v in imported_instances(engine, component).items() if k.startswith(PREFIX)}
        self.interfaces = frozenset(self._items)
        self._groups = resource_groups(self._items, TYPE_IDS)
        self._type_ids = {item: group for (_, item), group in self._groups.items()}  # bucket, cas

    def define(self, root: wc.LinkerInstance, denials: DenialLog) -> None:
        impls = self._implementations(denials)

        def impl_for(iface: str, item: str) -> Impl:
            return impls.get((iface.split("@", 1)[0], item)) or _absent(f"{iface}#{item}")

        define_instances(root, self.interfaces, self._items, self._groups, impl_for, self._natives())

    def _natives(self) -> dict[tuple[str, str], Native]:
        """The get in native code (agent.platform.kv_native) for node buckets, where the library is loaded."""
        get = "[method]bucket.get"
        return {
            (iface, get): self.native.get
            for iface, items in self._items.items()
            if self.native is not None and iface.startswith(STORE) and get in items and takes_get(items[get].ty)
        }

    def scope(self) -> using:
        return using(Table())

    def _implementations(self, denials: DenialLog) -> dict[tuple[str, str], Impl]:
        def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any) -> Any:
                try:
                    return _ok(fn(*args))
                except KvRefused as err:
                    return _other(str(err))

            return run

        def open_bucket(identifier: str) -> Variant:
            opener = self.buckets.get(identifier)
            if opener is None:
                denials.add(f"{self.label} opened key-value bucket {identifier!r}, which it was not granted")
                _log.warning("capability denied", component=self.label, capability=f"bucket {identifier}")
                return Variant("err", Variant("access-denied"))
            try:
                bucket = opener()
            except KvRefused as err:
                return _other(str(err))
            return _ok(current().keep(self._type_ids["bucket"], bucket, getattr(bucket, "rep", None)))

        def list_keys(bucket: Bucket, cursor: str | None) -> Any:
            keys, after = bucket.list_keys(cursor)
            response = wc.Record()
            response.keys = keys  # type: ignore[attr-defined]
            response.cursor = after  # type: ignore[attr-defined]
            return response

        def new_cas(bucket: Bucket, key: str) -> Any:
            value, version = bucket.read(key)
            return current().keep(self._type_ids["cas"], Cas(bucket, key, value, version))

        def swap(cas: Cas, value: bytes) -> Variant:
            try:
                if cas.bucket.swap(cas.key, value, cas.version):
                    return _ok()
                fresh, version = cas.bucket.read(cas.key)
                again = current().keep(self._type_ids["cas"], Cas(cas.bucket, cas.key, fresh, version))
                return Variant("err", Variant("cas-failed", again))
            except KvRefused as err:
                return Variant("err", Variant("store-error", Variant("other", str(err))))

        def set_many(bucket: Bucket, pairs: list[tuple[str, bytes]]) -> None:
            bucket.set_many([(k, bytes(v)) for k, v in pairs])

        def get(bucket: Bucket, key: str) -> Variant:  # the hot one, without guarded()'s two frames
            try:
                return Variant("ok", bucket.get(key))
            except KvRefused as err:
                return _other(str(err))

        method = "[method]bucket."
        return {
            (STORE, "open"): open_bucket,
            (STORE, method + "get"): get,
            (STORE, method + "set"): guarded(lambda b, k, v: b.set(k, bytes(v))),
            (STORE, method + "delete"): guarded(lambda b, k: b.delete(k)),
            (STORE, method + "exists"): guarded(lambda b, k: b.exists(k)),
            (STORE, method + "list-keys"): guarded(list_keys),
            (ATOMICS, "increment"): guarded(lambda b, k, delta: b.increment(k, delta)),
            (ATOMICS, "[static]cas.new"): guarded(new_cas),
            (ATOMICS, "[method]cas.current"): guarded(lambda cas: cas.value),
            (ATOMICS, "swap"): swap,
            (BATCH, "get-many"): guarded(lambda b, keys: b.get_many(list(keys))),
            (BATCH, "set-many"): guarded(set_many),
            (BATCH, "delete-many"): guarded(lambda b, keys: b.delete_many(list(keys))),
        }


def _absent(name: str) -> Impl:
    def absent(*_args: Any) -> Any:
        raise HostTrap(f"{name} is not implemented by this agent")

    return absent
