"""An application's key-value buckets (the manifest's ``spec.buckets``), which components reach through
``wasi:keyvalue`` when granted (``grants.keyValue: [NAME]``).

    spec:
      buckets:
        - name: counts
          backend: cluster     # etcd, through the control plane: consistent, follows a component that moves
          maxValueSize: 4Ki    # one value at most (default 64Ki)
          maxSize: 1Mi         # keys and values of the whole bucket at most (cluster default 1Mi, node 256Mi)
        - name: spool
          backend: node        # on the disk of each node that runs a granted component: works offline
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from neon._validate import dns_name, mapping, parse_size
from neon.errors import InvalidManifest

BACKENDS = ("node", "cluster")
MAX_KEY = 1024  # bytes of one key (UTF-8)
DEFAULT_VALUE = 64 << 10
MAX_VALUE = {"cluster": 1 << 20, "node": 64 << 20}  # the largest maxValueSize allowed
DEFAULT_SIZE = {"cluster": 1 << 20, "node": 256 << 20}
MAX_SIZE = {"cluster": 64 << 20, "node": 64 << 30}  # the largest maxSize allowed: a bucket cannot fill etcd


@dataclass(frozen=True)
class BucketSpec:
    name: str
    backend: str = "node"
    max_value_bytes: int = DEFAULT_VALUE
    max_bytes: int = DEFAULT_SIZE["node"]


def parse_buckets(doc: Any, path: str) -> tuple[BucketSpec, ...]:
    """``spec.buckets`` (``path``: its field)."""
    out: list[BucketSpec] = []
    seen: set[str] = set()
    if doc is not None and not isinstance(doc, list):
        raise InvalidManifest(f"{path} must be a list of buckets", field=path)
    for i, item in enumerate(doc or []):
        where = f"{path}[{i}]"
        b = mapping(item, where, required={"name"}, optional={"backend", "maxValueSize", "maxSize"})
        name = dns_name(b["name"], f"{where}.name")
        if name in seen:
            raise InvalidManifest(f"{where}.name: bucket {name!r} is declared twice", field=f"{where}.name")
        seen.add(name)
        backend = b.get("backend", "node")
        if backend not in BACKENDS:
            raise InvalidManifest(
                f"{where}.backend must be one of {', '.join(BACKENDS)}, got {backend!r}", field=f"{where}.backend"
            )
        value = _size(b, "maxValueSize", where, DEFAULT_VALUE, MAX_VALUE[backend])
        size = _size(b, "maxSize", where, DEFAULT_SIZE[backend], MAX_SIZE[backend])
        if value > size:
            raise InvalidManifest(f"{where}.maxValueSize is above its maxSize", field=f"{where}.maxValueSize")
        out.append(BucketSpec(name, backend, value, size))
    return tuple(out)


def _size(doc: dict[str, Any], key: str, where: str, default: int, highest: int) -> int:
    if doc.get(key) is None:
        return default
    size = parse_size(doc[key], f"{where}.{key}")
    if not 1 <= size <= highest:
        backend = doc.get("backend", "node")
        raise InvalidManifest(
            f"{where}.{key} must be from 1 byte to {highest >> 20}Mi for a {backend} bucket, got {doc[key]!r}",
            field=f"{where}.{key}",
        )
    return size


def buckets_to_list(buckets: tuple[BucketSpec, ...]) -> list[dict[str, Any]]:
    return [
        {"name": b.name, "backend": b.backend, "maxValueSize": b.max_value_bytes, "maxSize": b.max_bytes}
        for b in buckets
    ]


def key_problem(key: str) -> str:
    """What is wrong with a key a component writes or reads (empty: nothing)."""
    size = len(key.encode())
    return "" if key and size <= MAX_KEY else f"a key must be 1 to {MAX_KEY} bytes, got {size}"


def value_problem(spec: BucketSpec, key: str, value: bytes) -> str:
    """What is wrong with a value for ``spec`` (empty: nothing)."""
    if len(value) <= spec.max_value_bytes:
        return ""
    return f"the value of {key[:80]!r} is {len(value)} bytes; bucket {spec.name} takes at most {spec.max_value_bytes}"


def size_problem(spec: BucketSpec, used: int) -> str:
    """What is wrong with a bucket that would hold ``used`` bytes of keys and values (empty: nothing)."""
    return (
        "" if used <= spec.max_bytes else f"bucket {spec.name} would hold {used} bytes; its maxSize is {spec.max_bytes}"
    )


def counter_value(value: bytes | None) -> int | None:
    """A counter's number (absent: 0; None: not a counter), as wasi:keyvalue's ``increment`` keeps it here:
    8 bytes, little-endian, signed."""
    if value is None:
        return 0
    if len(value) != 8:
        return None
    number: int = struct.unpack("<q", value)[0]
    return number


def counter_bytes(number: int) -> bytes | None:
    """The bytes of a counter's number (None: outside a signed 64-bit integer)."""
    if not -(1 << 63) <= number < (1 << 63):
        return None
    return struct.pack("<q", number)
