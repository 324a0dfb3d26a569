"""The agent runtime against a real guest: least privilege, limits, instance modes, the compiled cache."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from structlog.testing import capture_logs

from agent.runtime.code_cache import code_digest
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime
from agent.runtime.pool import InstancePool
from neon._proto import values_pb2
from neon.errors import CallFailed, CapabilityDenied, DeadlineExceeded, NotFound, ResourceExhausted
from neon.grants import GrantSpec, VolumeGrant
from neon.runtime_spec import RuntimeSpec
from tests.support.helpers import GUESTS, assert_eventually


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = Runtime(tmp_path_factory.mktemp("compiled"))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def component(runtime: Runtime, probe_wasm: Path) -> wasmtime.component.Component:
    digest = "sha256:" + hashlib.sha256(probe_wasm.read_bytes()).hexdigest()
    return runtime.load(digest, probe_wasm)


def _pool(runtime: Runtime, component: Any, tmp_path: Path | None = None, **settings: Any) -> InstancePool:
    grants = settings.pop("grants", GrantSpec())
    template = ComponentTemplate(
        runtime,
        component,
        "test/probe",
        {},
        settings=RuntimeSpec(**settings),
        grants=grants,
        volume_root=tmp_path,
    )
    pool = InstancePool(template)
    pool.warm()
    return pool


def _call(pool: InstancePool, name: str, *args: Any) -> Any:
    return pool.call(FunctionRef("", name), list(args))


def test_nothing_is_visible_without_a_grant(runtime: Runtime, component: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    pool = _pool(runtime, component)
    assert _call(pool, "get-env", "HOME") is None and _call(pool, "get-env", "PATH") is None
    # No volume: the filesystem is absent. Reaching for it traps, and the instance is thrown away.
    for path in (str(secret), "/etc/hostname", "/"):
        with pytest.raises(CapabilityDenied, match=r"test/probe used the filesystem \(no volume is granted\)"):
            _call(pool, "read-file", path)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pytest.raises(CapabilityDenied, match=r"used the network \(sockets cannot be granted\)"):
            _call(pool, "connect", "127.0.0.1", server.getsockname()[1])
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing reached the host socket
    assert pool.template.denials.count == 4
    assert pool.discarded == 4  # every instance that tried was killed
    assert _call(pool, "count") == 1  # a fresh instance serves


def test_granted_env_and_volumes_are_visible(runtime: Runtime, component: Any, tmp_path: Path) -> None:
    grants = GrantSpec(
        env={"LOG_FORMAT": "rfc3339"},
        volumes=(VolumeGrant("spool", "/spool"), VolumeGrant("config", "/config", read_only=True)),
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.conf").write_text("level=debug")
    pool = _pool(runtime, component, tmp_path, grants=grants)
    assert _call(pool, "get-env", "LOG_FORMAT") == "rfc3339"
    assert _call(pool, "get-env", "HOME") is None
    assert _call(pool, "write-file", "/spool/out.txt", "hello") is None
    assert (tmp_path / "spool" / "out.txt").read_text() == "hello"
    assert _call(pool, "read-file", "/config/app.conf").payload == "level=debug"
    denied = _call(pool, "write-file", "/config/app.conf", "level=none")
    assert isinstance(denied, str) and (tmp_path / "config" / "app.conf").read_text() == "level=debug"
    for escape in ("/spool/../config/app.conf", "/spool/../../../etc/passwd"):
        result = _call(pool, "read-file", escape)  # '..' never leaves a preopened directory
        assert result.tag == "err" and "Operation not permitted" in result.payload, result


def test_an_infinite_loop_is_stopped_and_the_instance_replaced(runtime: Runtime, component: Any) -> None:
    pool = _pool(runtime, component, timeout_seconds=0.3)
    assert _call(pool, "count") == 1
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"test/probe spin ran past its 0.3s deadline"):
        _call(pool, "spin", 10**15)
    assert time.monotonic() - started < 5
    assert pool.stats()["discarded"] == 1
    assert _call(pool, "count") == 1  # a fresh instance: the trapped one was not reused
    assert _call(pool, "spin", 1000) == sum(range(1000)) % 1000003


def test_memory_limit_traps_and_the_instance_is_replaced(runtime: Runtime, component: Any, tmp_path: Path) -> None:
    # With a volume, the filesystem is there for CPython to print its MemoryError's traceback.
    grants = GrantSpec(volumes=(VolumeGrant("spool", "/spool"),))
    pool = _pool(runtime, component, tmp_path, memory_bytes=64 << 20, grants=grants)
    assert _call(pool, "allocate", 8) == 8
    with pytest.raises(CallFailed, match=r"test/probe allocate trapped"):
        _call(pool, "allocate", 200)
    assert _call(pool, "allocate", 1) == 1  # fresh instance, nothing held


def test_pooled_keeps_state_and_per_call_does_not(runtime: Runtime, component: Any) -> None:
    pooled = _pool(runtime, component, mode="pooled", instances=1)
    assert [_call(pooled, "count") for _ in range(3)] == [1, 2, 3]
    per_call = _pool(runtime, component, mode="per-call", instances=1)
    assert [_call(per_call, "count") for _ in range(3)] == [1, 1, 1]
    assert per_call.created == 3 and pooled.created == 1


def _busy_call(pool: InstancePool, errors: list[BaseException], seconds: float = 0.6) -> threading.Thread:
    def run() -> None:
        try:
            pool.call(FunctionRef("", "spin"), [10**15], time.monotonic() + seconds)
        except DeadlineExceeded:
            pass
        except BaseException as err:  # noqa: BLE001 - collected for the test to see
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_queue_is_bounded(runtime: Runtime, component: Any) -> None:
    pool = _pool(runtime, component, instances=1, max_queue=1)
    errors: list[BaseException] = []
    first = _busy_call(pool, errors)
    assert_eventually(lambda: _assert_stat(pool, "busy", 1), timeout=5, interval=0.005)
    second = _busy_call(pool, errors, seconds=5)
    assert_eventually(lambda: _assert_stat(pool, "waiting", 1), timeout=5, interval=0.005)
    with pytest.raises(ResourceExhausted, match=r"all 1 instance\(s\) are busy and 1 call\(s\) are queued"):
        _call(pool, "count")
    first.join()
    second.join()
    assert errors == []
    assert _call(pool, "count") >= 1


def test_instances_serve_calls_in_parallel(runtime: Runtime, component: Any) -> None:
    pool = _pool(runtime, component, instances=2, max_queue=0)
    errors: list[BaseException] = []
    threads = [_busy_call(pool, errors), _busy_call(pool, errors)]
    assert_eventually(lambda: _assert_stat(pool, "busy", 2), timeout=5, interval=0.005)
    for thread in threads:
        thread.join()
    assert errors == []


def _assert_stat(pool: InstancePool, key: str, value: int) -> None:
    assert pool.stats()[key] == value, pool.stats()


def test_guest_output_goes_to_the_log_with_the_component(runtime: Runtime, component: Any) -> None:
    pool = _pool(runtime, component)
    with capture_logs() as logs:
        _call(pool, "say", "hello")
    lines = [(e["event"], e["guest"], e["text"]) for e in logs if e.get("guest")]
    assert ("guest stdout", "test/probe", "out: hello") in lines
    assert ("guest stderr", "test/probe", "err: hello") in lines


def test_compiled_cache_survives_restarts_and_heals(tmp_path: Path, probe_wasm: Path) -> None:
    digest = "sha256:" + hashlib.sha256(probe_wasm.read_bytes()).hexdigest()
    first = Runtime(tmp_path)
    first.load(digest, probe_wasm)
    assert first.compiled == 1
    first.load(digest, probe_wasm)
    assert first.compiled == 1
    first.close()

    restarted = Runtime(tmp_path)  # a restarted agent: loads without compiling
    restarted.load(digest, probe_wasm)
    assert restarted.compiled == 0
    restarted.close()

    (cached,) = tmp_path.rglob("*.cwasm")
    whole = cached.read_bytes()
    cached.write_bytes(whole[:1000])
    healed = Runtime(tmp_path)
    with capture_logs() as logs:
        comp = healed.load(digest, probe_wasm)
    assert healed.compiled == 1
    assert [e["reason"] for e in logs if e["event"] == "compiled cache entry refused; it is made again"] == [
        f"the code is {code_digest(cached.read_bytes()[:1000])}, the seal names {code_digest(whole)} (changed on disk)"
    ]
    assert comp is not None and cached.stat().st_size > 1000 and healed.code.refused == 1
    healed.close()


def test_a_blocked_import_call_does_not_block_other_calls(runtime: Runtime, tmp_path: Path) -> None:
    """A guest waiting in an import (as in a forwarded call) holds one instance; the others keep serving."""
    from cli.devcluster.guests import build_python_guest

    root = GUESTS / "sink"
    wasm = build_python_guest(root / "wit", "sink-client", root / "client-py")
    client = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
    release = threading.Event()
    blocked = threading.Event()
    calls = {"echo-bool": 0}

    def echo_bool(value: bool) -> bool:
        calls["echo-bool"] += 1
        if calls["echo-bool"] == 1:
            blocked.set()
            assert release.wait(10)
        return value

    iface = "neon-test:sink/sink@0.1.0"
    funcs = {
        name: (lambda *args: args[0] if len(args) == 1 else tuple(args)) for name in runtime.imports(client)[iface]
    }
    funcs["echo-bool"] = echo_bool
    funcs["no-result"] = lambda value: None
    template = ComponentTemplate(runtime, client, "test/client", {iface: funcs}, settings=RuntimeSpec(instances=2))
    pool = InstancePool(template)
    pool.warm()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(pool.call(FunctionRef("", "check-all"), [])))
    first.start()
    assert blocked.wait(10)
    # The first call is parked inside its import; a second call runs to the end meanwhile.
    assert pool.call(FunctionRef("", "check-all"), []) == []
    assert first.is_alive()
    release.set()
    first.join(10)
    assert results == [[]]


def test_concurrent_loads_compile_once(tmp_path: Path, probe_wasm: Path) -> None:
    digest = "sha256:" + hashlib.sha256(probe_wasm.read_bytes()).hexdigest()
    rt = Runtime(tmp_path)
    loaded: list[Any] = []
    threads = [threading.Thread(target=lambda: loaded.append(rt.load(digest, probe_wasm))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rt.compiled == 1 and len(loaded) == 3 and loaded[0] is loaded[1] is loaded[2]
    rt.close()


def test_a_function_without_a_result_is_called_with_a_lifter(runtime: Runtime, tmp_path: Path) -> None:
    """The data plane always hands the runtime its lifter; a function returning nothing runs and gives
    None, and the lifter is never asked to read a result that is not there."""
    counter = """(component
      (core module $m
        (global $n (mut i32) (i32.const 0))
        (func (export "add") (param i32) (global.set $n (i32.add (global.get $n) (local.get 0))))
        (func (export "total") (result i32) (global.get $n)))
      (core instance $i (instantiate $m))
      (func (export "add") (param "n" u32) (canon lift (core func $i "add")))
      (func (export "total") (result u32) (canon lift (core func $i "total"))))"""
    path = tmp_path / "counter.wasm"
    path.write_bytes(wasmtime.wat2wasm(counter))
    loaded = runtime.load("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), path)
    instance = ComponentTemplate(runtime, loaded, "test/counter", {}, settings=RuntimeSpec()).instantiate()
    add, total = FunctionRef("", "add"), FunctionRef("", "total")

    def refuse(_c: Any) -> Any:
        raise AssertionError("asked to lift the result of a function that has none")

    assert instance.call(add, [3], None, refuse) is None
    assert instance.call(add, [4], None, refuse) is None
    wired = instance.call(total, [], None, instance.template.signature(total).wire_result)
    assert values_pb2.Value.FromString(wired).u64 == 7


def test_a_toolchains_own_exports_are_neither_listed_nor_invocable(runtime: Runtime, component: Any) -> None:
    assert "exports" in component.type.exports(runtime.engine)  # componentize-py's pre-initialization entry
    template = ComponentTemplate(runtime, component, "test/probe", {})
    assert template.functions and all(ref.interface != "exports" for ref in template.functions)
    with pytest.raises(NotFound) as missing:
        template.resolve("exports#init")
    assert "init" not in missing.value.message.split("(exports:")[1], missing.value.message
    with pytest.raises(NotFound):
        template.signature(FunctionRef("exports", "init"))
