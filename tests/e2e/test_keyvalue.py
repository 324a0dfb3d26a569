"""Key-value buckets end to end, agents as separate processes: a guest on the edge and one in the cloud share a
cluster bucket (etcd through the control plane), each keeps a node bucket of its own, the bucket's limits refuse
what is too big with the reason and disturb nothing else, and a bucket not granted is denied and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.client import ControlClient
from tests.support.helpers import Cluster, assert_eventually, wait_running

pytestmark = pytest.mark.e2e


def _manifest(directory: Path, guest: Path) -> Path:
    path = directory / "kv.yaml"
    path.write_text(
        f"""\
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: kv}}
spec:
  buckets:
    - {{name: shared, backend: cluster, maxValueSize: 1Ki, maxSize: 4Ki}}
    - {{name: local, backend: node}}
  components:
    - name: writer
      artifact: {guest}
      placement: {{nodeSelector: {{tier: edge}}}}
      grants: {{keyValue: [shared, local]}}
    - name: reader
      artifact: {guest}
      placement: {{nodeSelector: {{tier: cloud}}}}
      grants: {{keyValue: [shared, local]}}
    - name: nosy
      artifact: {guest}
      placement: {{nodeSelector: {{tier: cloud}}}}
"""
    )
    return path


def _call(client: ControlClient, component: str, function: str, *args: Any) -> Any:
    return client.invoke("kv", component, function, list(args))[0]


def test_buckets_are_shared_kept_limited_and_granted(cluster: Cluster, tmp_path: Path, kv_guest: Path) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(_manifest(tmp_path, kv_guest))
    wait_running(client, "kv")

    # The cluster bucket is one bucket for both nodes; each node bucket is its node's own.
    assert _call(client, "writer", "set", "shared", "greeting", "hello") == "ok"
    assert _call(client, "reader", "get", "shared", "greeting") == {"ok": "hello"}
    assert [_call(client, c, "increment", "shared", "hits", 1) for c in ("writer", "reader", "writer")] == [
        {"ok": str(n)} for n in (1, 2, 3)
    ]
    assert _call(client, "writer", "set-many", "shared", [["a", "1"], ["b", "2"]]) == "ok"
    assert _call(client, "reader", "get-many", "shared", ["a", "b", "zz"]) == {
        "ok": [["a", "1"], ["b", "2"], ["zz", None]]
    }
    assert _call(client, "reader", "keys", "shared") == {"ok": ["a", "b", "greeting", "hits"]}
    assert _call(client, "reader", "swap", "shared", "greeting", "hello", "bonjour") == {"ok": True}
    assert _call(client, "writer", "swap", "shared", "greeting", "hello", "hallo") == {"ok": False}
    assert _call(client, "writer", "set", "local", "mine", "edge") == "ok"
    assert _call(client, "reader", "get", "local", "mine") == {"ok": None}  # the cloud's node bucket is apart
    assert _call(client, "writer", "get", "local", "mine") == {"ok": "edge"}

    # Limits: a value over maxValueSize and a bucket over maxSize are refused with the reason.
    too_big = _call(client, "writer", "fill", "shared", "big", 1025)
    assert "1025 bytes; bucket shared takes at most 1024" in str(too_big), too_big
    for i in range(4):  # 31 bytes held before, 1002 each (key and value): 4039
        assert _call(client, "writer", "fill", "shared", f"f{i}", 1000) == "ok"
    full = _call(client, "writer", "fill", "shared", "f4", 1000)
    assert "bucket shared would hold 5041 bytes; its maxSize is 4096" in str(full), full
    long_key = _call(client, "writer", "set", "shared", "k" * 1025, "v")
    assert "a key must be 1 to 1024 bytes" in str(long_key), long_key
    assert _call(client, "reader", "get", "shared", "greeting") == {"ok": "bonjour"}  # nothing else disturbed

    # A bucket not granted: access-denied, and a CapabilityDenied event.
    assert _call(client, "nosy", "get", "shared", "greeting") == {"err": "access-denied"}

    def reported() -> None:
        denied = [e for e in client.events(history=200, app="kv") if e.kind == "CapabilityDenied"]
        assert denied and "opened key-value bucket 'shared'" in denied[-1].message, denied

    assert_eventually(reported, timeout=30)

    # The cluster bucket goes with the application.
    client.delete_app("kv")
    assert_eventually(lambda: _kv_keys(cluster) == [], timeout=30)


def _kv_keys(cluster: Cluster) -> list[bytes]:
    async def read(store: Any) -> list[bytes]:
        return [kv.key for kv in await store.client.get_prefix(b"/neon/kv")]

    return cluster.store(read)
