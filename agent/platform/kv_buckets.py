"""Key-value buckets as the agent's wasi:keyvalue host uses them: the ``node`` backend (SQLite on this node's
disk: survives restarts, works offline) and the ``cluster`` one (etcd, through the control plane's KeyValue
call), both enforcing the bucket's limits: a key of at most 1 KiB, a value of at most ``maxValueSize``, keys and
values of the whole bucket within ``maxSize``. Calls run on the guest's thread and block."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import grpc

from agent.platform.kv_native import Library, library
from neon.bucket_spec import BucketSpec, counter_bytes, counter_value, key_problem, size_problem, value_problem

PAGE = 1000  # keys per list-keys page
NATIVE_DIR = ".native"  # under the buckets' directory: no application is named so


class KvRefused(Exception):
    """What the guest gets as the interface's ``other`` error: a limit, a bad key, a backend that failed."""


class Bucket(Protocol):
    spec: BucketSpec

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, cursor: str | None) -> tuple[list[str], str | None]: ...
    def increment(self, key: str, delta: int) -> int: ...
    def get_many(self, keys: list[str]) -> list[tuple[str, bytes | None]]: ...
    def set_many(self, pairs: list[tuple[str, bytes]]) -> None: ...
    def delete_many(self, keys: list[str]) -> None: ...
    def read(self, key: str) -> tuple[bytes | None, int]: ...  # the value and its version, for a swap
    def swap(self, key: str, value: bytes, version: int) -> bool: ...  # False: it changed since read


def check_key(key: str) -> None:
    if problem := key_problem(key):
        raise KvRefused(problem)


def check_value(spec: BucketSpec, key: str, value: bytes) -> None:
    if problem := value_problem(spec, key, value):
        raise KvRefused(problem)


def counter(value: bytes | None, key: str) -> int:
    number = counter_value(value)
    if number is None:
        raise KvRefused(f"{key[:80]!r} holds {len(value or b'')} bytes, not a counter (8 bytes, little-endian)")
    return number


def packed(number: int) -> bytes:
    data = counter_bytes(number)
    if data is None:
        raise KvRefused("the counter would leave the range of a signed 64-bit integer")
    return data


class NodeBucket:
    """A bucket in one SQLite file on this node (WAL; one writer at a time, readers alongside)."""

    def __init__(self, path: Path, spec: BucketSpec, native: Library | None = None) -> None:
        self.spec = spec
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)"
        )
        # The bytes of keys and values held, kept with every write (not summed over the table each time), and
        # the bucket's revision: each write's, which the keys it wrote take as their version (never reused, so
        # a key deleted and written again does not pass for unchanged).
        self._db.execute("CREATE TABLE IF NOT EXISTS size (bytes INTEGER NOT NULL, revision INTEGER NOT NULL)")
        if self._one("SELECT COUNT(*) FROM size") == 0:
            self._db.execute("INSERT INTO size (bytes, revision) VALUES (0, 0)")
        self._lock = threading.Lock()
        # Read by the native get too (agent.platform.kv_native), through its own connection, when it can:
        # then every handle to the bucket has the rep that names its slot there.
        self._native = native
        self.rep = native.open(path) if native is not None else None

    def close(self) -> None:
        if self._native is not None and self.rep is not None:
            self._native.close(self.rep)
            self.rep = None
        with self._lock:
            self._db.close()

    def _one(self, sql: str, *args: Any) -> Any:
        row = self._db.execute(sql, args).fetchone()
        return row[0] if row else None

    def get(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            value = self._one("SELECT value FROM kv WHERE key = ?", key)
        return bytes(value) if value is not None else None

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def read(self, key: str) -> tuple[bytes | None, int]:
        check_key(key)
        with self._lock:
            row = self._db.execute("SELECT value, version FROM kv WHERE key = ?", (key,)).fetchone()
        return (bytes(row[0]), int(row[1])) if row else (None, 0)

    def _write(self, pairs: list[tuple[str, bytes | None]], guard: tuple[str, int] | None = None) -> bool:
        """Set (or, with None, delete) every pair in one transaction within the bucket's size; with ``guard``
        (key, version) only if that key is still at that version."""
        for key, value in pairs:
            check_key(key)
            if value is not None:
                check_value(self.spec, key, value)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if guard is not None and (self._one("SELECT version FROM kv WHERE key = ?", guard[0]) or 0) != guard[1]:
                    self._db.execute("ROLLBACK")
                    return False
                used = self._one("SELECT bytes FROM size")
                revision = self._one("SELECT revision FROM size") + 1
                for key, value in pairs:
                    used -= (
                        self._one("SELECT LENGTH(CAST(key AS BLOB)) + LENGTH(value) FROM kv WHERE key = ?", key) or 0
                    )
                    if value is None:
                        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
                    else:
                        used += len(key.encode()) + len(value)
                        self._db.execute(
                            "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value, version = excluded.version",
                            (key, value, revision),
                        )
                self._db.execute("UPDATE size SET bytes = ?, revision = ?", (used, revision))
                if problem := size_problem(self.spec, used):
                    self._db.execute("ROLLBACK")
                    raise KvRefused(problem)
                self._db.execute("COMMIT")
                return True
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise KvRefused(f"bucket {self.spec.name}: {err}") from None

    def set(self, key: str, value: bytes) -> None:
        self._write([(key, value)])

    def delete(self, key: str) -> None:
        self._write([(key, None)])

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        self._write(list(pairs))

    def delete_many(self, keys: list[str]) -> None:
        self._write([(key, None) for key in keys])

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes | None]]:
        return [(key, self.get(key)) for key in keys]

    def list_keys(self, cursor: str | None) -> tuple[list[str], str | None]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM kv WHERE key > ? ORDER BY key LIMIT ?", (cursor or "", PAGE + 1)
            ).fetchall()
        keys = [r[0] for r in rows[:PAGE]]
        return keys, (keys[-1] if len(rows) > PAGE else None)

    def increment(self, key: str, delta: int) -> int:
        while True:
            value, version = self.read(key)
            number = counter(value, key) + delta
            if self._write([(key, packed(number))], (key, version)):
                return number

    def swap(self, key: str, value: bytes, version: int) -> bool:
        return self._write([(key, value)], (key, version))


class ClusterBucket:
    """A bucket in etcd: every operation is one KeyValue call to the control plane, which checks the grant
    and the limits and writes transactionally. ``call(op, **fields)`` makes the call and returns its reply."""

    def __init__(self, spec: BucketSpec, call: Callable[..., Any]) -> None:
        self.spec = spec
        self.call = call

    def get(self, key: str) -> bytes | None:
        check_key(key)
        reply = self.call("get", keys=[key])
        return bytes(reply.values[0]) if reply.present[0] else None

    def exists(self, key: str) -> bool:
        check_key(key)
        return bool(self.call("exists", keys=[key]).exists)

    def read(self, key: str) -> tuple[bytes | None, int]:
        check_key(key)
        reply = self.call("read", keys=[key])
        return (bytes(reply.values[0]) if reply.present[0] else None), int(reply.version)

    def set(self, key: str, value: bytes) -> None:
        self.set_many([(key, value)])

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        for key, value in pairs:
            check_key(key)
            check_value(self.spec, key, value)
        self.call("set", keys=[k for k, _ in pairs], values=[v for _, v in pairs])

    def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            check_key(key)
        self.call("delete", keys=keys)

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes | None]]:
        for key in keys:
            check_key(key)
        reply = self.call("get", keys=keys)
        return [(k, bytes(v) if p else None) for k, v, p in zip(keys, reply.values, reply.present, strict=True)]

    def list_keys(self, cursor: str | None) -> tuple[list[str], str | None]:
        reply = self.call("list", cursor=cursor or "")
        return list(reply.keys), (reply.cursor or None)

    def increment(self, key: str, delta: int) -> int:
        check_key(key)
        return int(self.call("increment", keys=[key], delta=delta).number)

    def swap(self, key: str, value: bytes, version: int) -> bool:
        check_key(key)
        check_value(self.spec, key, value)
        return bool(self.call("swap", keys=[key], values=[value], version=version).swapped)


class Buckets:
    """The buckets of this node's components: node ones opened once per application and kept (one SQLite file
    each, in ``directory/APP/BUCKET.sqlite``), cluster ones reached through ``cluster_call(app, component,
    bucket, op, **fields)``, a coroutine function run on the agent's loop (:meth:`bind`) while the guest's
    thread waits."""

    TIMEOUT = 15.0

    def __init__(self, directory: Path, cluster_call: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        self.directory = directory
        self.cluster_call = cluster_call
        self.loop: asyncio.AbstractEventLoop | None = None
        self._node: dict[tuple[str, str], NodeBucket] = {}
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def native(self) -> Library | None:
        """The native get's library (built in this directory the first time), or None where it cannot be."""
        return library(self.directory / NATIVE_DIR)

    def opener(self, app: str, component: str, spec: BucketSpec) -> Callable[[], Bucket]:
        if spec.backend == "cluster":
            return lambda: ClusterBucket(spec, functools.partial(self._call, app, component, spec.name))
        return lambda: self._node_bucket(app, spec)

    def _call(self, *args: Any, **fields: Any) -> Any:
        if self.loop is None:
            raise KvRefused("the agent is not connected to a control plane yet")
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
                self.cluster_call(*args, **fields), self.loop
            )
            try:
                return future.result(max(0.1, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise KvRefused(f"the control plane did not answer within {self.TIMEOUT:.0f} s") from None
            except grpc.aio.AioRpcError as err:
                # CANCELLED: the channel it waited on was replaced (the agent moved to another replica) before
                # the call was sent; it is made again on the new one.
                if err.code() != grpc.StatusCode.CANCELLED or time.monotonic() > deadline:
                    raise KvRefused(f"{err.details()} ({err.code().name})") from None
                time.sleep(0.05)

    def _node_bucket(self, app: str, spec: BucketSpec) -> NodeBucket:
        with self._lock:
            bucket = self._node.get((app, spec.name))
            if bucket is None:
                try:
                    bucket = NodeBucket(self.directory / app / f"{spec.name}.sqlite", spec, self.native())
                except (OSError, sqlite3.Error) as err:
                    raise KvRefused(f"bucket {spec.name} cannot be opened on this node: {err}") from None
                self._node[(app, spec.name)] = bucket
            bucket.spec = spec  # the limits of the generation that opens it
            return bucket

    def close(self) -> None:
        with self._lock:
            for bucket in self._node.values():
                bucket.close()
            self._node.clear()
