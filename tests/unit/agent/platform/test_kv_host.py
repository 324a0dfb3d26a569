"""wasi:keyvalue against a real guest on the node backend (SQLite): every call of store, atomics and batch,
the bucket's limits refused with the reason, an ungranted bucket denied and reported, and the data still there
after the agent's buckets are opened again (a restart)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wasmtime.component import Variant

from agent.platform.kv_buckets import Buckets
from agent.platform.kv_host import KeyValueHost
from agent.runtime.denials import DenialLog
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime
from agent.runtime.pool import InstancePool
from neon.bucket_spec import BucketSpec

SPEC = BucketSpec("data", "node", max_value_bytes=64, max_bytes=400)


async def _no_cluster(*_args: Any, **_fields: Any) -> Any:
    raise AssertionError("a node bucket called the control plane")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = Runtime(tmp_path_factory.mktemp("compiled"))
    yield rt
    rt.close()


def _pool(runtime: Runtime, wasm: Path, buckets: Buckets, denials: DenialLog, native: bool = True) -> InstancePool:
    component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
    library = buckets.native() if native else None
    host = KeyValueHost(runtime.engine, component, "test/kv", {"data": buckets.opener("test", "kv", SPEC)}, library)
    assert host.interfaces and all(
        i.startswith("wasi:keyvalue/") and i.endswith("@0.2.0-draft2") for i in host.interfaces
    )
    pool = InstancePool(ComponentTemplate(runtime, component, "test/kv", {}, host=host, denials=denials))
    pool.warm()
    return pool


def _ok(value: Any) -> Any:
    """A result's ok payload (wasmtime-py gives a bare value where the cases' Python types differ)."""
    if isinstance(value, Variant):
        assert value.tag == "ok", value.payload
        return value.payload
    assert not isinstance(value, str), value
    return value


def _err(value: Any) -> str:
    if isinstance(value, Variant):
        assert value.tag == "err", value
        return str(value.payload)
    assert isinstance(value, str), value
    return value


@pytest.mark.parametrize("native", [True, False], ids=["native-get", "python-get"])
def test_store_atomics_and_batch_on_a_node_bucket(
    runtime: Runtime, kv_guest: Path, tmp_path: Path, native: bool
) -> None:
    denials = DenialLog("test/kv")
    buckets = Buckets(tmp_path / "kv", _no_cluster)
    library = buckets.native()
    assert library is not None, "the native get could not be built here (see the log): cc is part of the image"
    before = library.counts()
    pool = _pool(runtime, kv_guest, buckets, denials, native)
    assert sorted(pool.template.host.interfaces) == [  # type: ignore[union-attr]
        f"wasi:keyvalue/{i}@0.2.0-draft2" for i in ("atomics", "batch", "store")
    ]

    def call(name: str, *args: Any) -> Any:
        return pool.call(FunctionRef("", name), list(args))

    try:
        assert _ok(call("get", "data", "a")) is None and _ok(call("exists", "data", "a")) is False
        _ok(call("set", "data", "a", "one"))
        assert _ok(call("get", "data", "a")) == "one" and _ok(call("exists", "data", "a")) is True
        _ok(call("set-many", "data", [("b", "two"), ("c", "three")]))
        assert _ok(call("get-many", "data", ["a", "c", "zz"])) == [("a", "one"), ("c", "three"), ("zz", None)]
        assert _ok(call("keys", "data")) == ["a", "b", "c"]
        assert [_ok(call("increment", "data", "n", d)) for d in (5, -2, 10)] == [5, 3, 13]
        assert _ok(call("swap", "data", "a", "one", "uno")) is True  # still "one": swapped
        assert _ok(call("swap", "data", "a", "one", "eins")) is False  # no longer "one"
        assert _ok(call("get", "data", "a")) == "uno"
        _ok(call("delete", "data", "b"))
        _ok(call("delete-many", "data", ["c", "never"]))
        assert _ok(call("keys", "data")) == ["a", "n"]
        # The limits: a value over maxValueSize, a bucket over maxSize; nothing else is disturbed.
        assert (
            _err(call("fill", "data", "big", 65))
            == "other: the value of 'big' is 65 bytes; bucket data takes at most 64"
        )
        for i in range(6):  # 13 bytes held, and 62 (key and value) each: 385
            _ok(call("fill", "data", f"f{i}", 60))
        over = _err(call("fill", "data", "f6", 60))
        assert over == "other: bucket data would hold 447 bytes; its maxSize is 400", over
        assert _ok(call("exists", "data", "f6")) is False
        assert _err(call("get", "data", "")) == "other: a key must be 1 to 1024 bytes, got 0"
        assert _ok(call("get", "data", "a")) == "uno"
        # A bucket it was not granted: access-denied, and a denial reported (the instance keeps serving).
        assert _err(call("get", "other", "a")) == "access-denied"
        assert denials.count == 1 and "opened key-value bucket 'other'" in denials.last
        assert pool.discarded == 0
        answered, handed = (now - then for now, then in zip(library.counts(), before, strict=True))
        # The four gets of a key present or absent answered natively; the empty key handed to Python, which
        # refuses it with its message (get-many is batch's own call). Without the library: none of them.
        assert (answered, handed) == ((4, 1) if native else (0, 0)), (answered, handed)
    finally:
        pool.close()
        buckets.close()
    # Opened again (a restarted agent): the data is on the node's disk.
    again = Buckets(tmp_path / "kv", _no_cluster)
    pool = _pool(runtime, kv_guest, again, DenialLog("test/kv"))
    try:
        assert _ok(pool.call(FunctionRef("", "get"), ["data", "a"])) == "uno"
        assert _ok(pool.call(FunctionRef("", "increment"), ["data", "n", 1])) == 14
    finally:
        pool.close()
        again.close()


def test_a_javascript_guest_shares_the_node_bucket(
    runtime: Runtime, kv_guest: Path, kv_js_guest: Path, tmp_path: Path
) -> None:
    buckets = Buckets(tmp_path / "kv", _no_cluster)
    js_denials = DenialLog("test/kv-js")
    python, js = (
        _pool(runtime, kv_guest, buckets, DenialLog("test/kv")),
        _pool(runtime, kv_js_guest, buckets, js_denials),
    )
    try:
        _ok(js.call(FunctionRef("", "set"), ["data", "from-js", "hola"]))
        assert _ok(python.call(FunctionRef("", "get"), ["data", "from-js"])) == "hola"
        _ok(python.call(FunctionRef("", "set"), ["data", "from-py", "hello"]))
        assert _ok(js.call(FunctionRef("", "get"), ["data", "from-py"])) == "hello"
        assert _ok(js.call(FunctionRef("", "get"), ["data", "nothing"])) is None
        assert [_ok(js.call(FunctionRef("", "increment"), ["data", "n", d])) for d in (2, 3)] == [2, 5]
        assert _ok(python.call(FunctionRef("", "increment"), ["data", "n", 1])) == 6
        assert _err(js.call(FunctionRef("", "get"), ["other", "k"])) == "access-denied"
        assert js_denials.count == 1
        too_big = _err(js.call(FunctionRef("", "set"), ["data", "big", "x" * 65]))
        assert too_big == "other: the value of 'big' is 65 bytes; bucket data takes at most 64", too_big
    finally:
        python.close()
        js.close()
        buckets.close()


def test_the_native_get_hands_a_cluster_bucket_to_python_and_keeps_each_bucket_apart(
    runtime: Runtime, kv_guest: Path, tmp_path: Path
) -> None:
    """One component granted a node bucket and a cluster one: the node bucket's gets are answered natively, the
    cluster bucket's handed to the Python get (the borrow already taken: its rep passed on), each with its
    own data; a node bucket closed and opened again gets a new slot."""
    import asyncio
    import threading
    from types import SimpleNamespace

    from agent.platform.kv_host import KeyValueHost

    held: dict[str, bytes] = {}

    async def cluster(_app: str, _component: str, _bucket: str, op: str, **fields: Any) -> Any:
        keys, values = fields.get("keys", []), fields.get("values", [])
        if op == "set":
            held.update(zip(keys, values, strict=True))
            return SimpleNamespace()
        assert op == "get", op
        return SimpleNamespace(values=[held.get(k, b"") for k in keys], present=[k in held for k in keys])

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    buckets = Buckets(tmp_path / "kv", cluster)
    buckets.bind(loop)
    library = buckets.native()
    assert library is not None
    shared = BucketSpec("shared", "cluster", max_value_bytes=64, max_bytes=400)
    wasm = kv_guest
    component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
    openers = {"data": buckets.opener("test", "kv", SPEC), "shared": buckets.opener("test", "kv", shared)}
    host = KeyValueHost(runtime.engine, component, "test/kv", openers, library)
    pool = InstancePool(ComponentTemplate(runtime, component, "test/kv", {}, host=host, denials=DenialLog("t")))
    pool.warm()

    def call(name: str, *args: Any) -> Any:
        return pool.call(FunctionRef("", name), list(args))

    try:
        _ok(call("set", "data", "k", "on the node"))
        _ok(call("set", "shared", "k", "in the cluster"))
        before = library.counts()
        assert _ok(call("get", "data", "k")) == "on the node"
        assert _ok(call("get", "shared", "k")) == "in the cluster"
        assert _ok(call("get", "shared", "absent")) is None
        answered, handed = (now - then for now, then in zip(library.counts(), before, strict=True))
        assert (answered, handed) == (1, 2), (answered, handed)
        buckets.close()  # the buckets closed (an application removed): opened again at the next call, a new slot
        assert _ok(call("get", "data", "k")) == "on the node"
        assert library.counts()[0] - before[0] == 2
    finally:
        pool.close()
        buckets.close()
        loop.call_soon_threadsafe(loop.stop)
