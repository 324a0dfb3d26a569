"""Every WIT value type across nodes: a JavaScript exporter on the edge, a Python importer in the cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from neon._proto import values_pb2
from tests.support.helpers import Cluster, wait_running

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: sink}}
spec:
  components:
    - name: server
      artifact: {server}
      placement: {{nodeSelector: {{tier: edge}}}}
    - name: client
      artifact: {client}
      placement: {{nodeSelector: {{tier: cloud}}}}
  links:
    - {{importer: client, import: "neon-test:sink/sink@0.1.0", exporter: server}}
"""


def _deploy(cluster: Cluster, sink_guests: dict[str, Path], tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    path = tmp_path / "sink.yaml"
    path.write_text(MANIFEST.format(**{k: str(v) for k, v in sink_guests.items()}))
    client.apply_file(path)

    wait_running(client, "sink", timeout=120)
    assert [(r.node, r.mode) for r in client.get_app("sink").links[0].routes] == [("cloud-1", "remote")]


JSON_CASES: list[tuple[str, list[object], object]] = [
    # s64 and u64 come back as strings (proto3's JSON mapping of 64-bit integers), and go in as either
    (
        "echo-ints",
        [-128, -32768, -(2**31), -(2**63), 255, 65535, 2**32 - 1, 2**64 - 1],
        [-128, -32768, -(2**31), str(-(2**63)), 255, 65535, 2**32 - 1, str(2**64 - 1)],
    ),
    (
        "echo-ints",
        [-128, -32768, -(2**31), str(-(2**63)), 255, 65535, 2**32 - 1, str(2**64 - 1)],
        [-128, -32768, -(2**31), str(-(2**63)), 255, 65535, 2**32 - 1, str(2**64 - 1)],
    ),
    ("echo-floats", [1.5, "NaN"], [1.5, "NaN"]),
    ("echo-floats", ["Infinity", "-Infinity"], ["Infinity", "-Infinity"]),
    ("echo-char", ["😀"], "😀"),
    ("echo-bytes", ["AP8="], [0, 255]),
    ("echo-record", [{"x": 1, "y": -2, "label": "p"}], {"x": 1, "y": -2, "label": "p"}),
    ("echo-variant", [{"rect": [1.5, 2.5]}], {"rect": [1.5, 2.5]}),
    ("echo-variant", ["empty"], "empty"),
    ("echo-enum", ["green"], "green"),
    ("echo-flags", [["exec", "read"]], ["read", "exec"]),
    ("echo-option", [None], None),
    ("echo-nested-option", [{"some": None}], {"some": None}),
    ("echo-result", [{"err": "no"}], {"err": "no"}),
    ("echo-bare-result", ["ok"], "ok"),
    ("no-result", [3], None),
]


def test_every_type_crosses_nodes_between_python_and_javascript(
    cluster: Cluster, sink_guests: dict[str, Path], tmp_path: Path
) -> None:
    _deploy(cluster, sink_guests, tmp_path)
    assert cluster.client is not None
    problems, node = cluster.client.invoke("sink", "client", "check-all", [])
    assert node == "cloud-1"
    assert problems == []

    # The same JavaScript guest called by users through the control plane, with JSON values.
    mismatches = []
    for function, args, expected in JSON_CASES:
        got = cluster.client.invoke("sink", "server", function, args)
        if got != (expected, "edge-1"):
            mismatches.append((function, args, got))
    assert mismatches == []

    # Typed values: a record and a u64 at its limit, as a client that read DescribeComponent builds them.
    point = values_pb2.Value(list=values_pb2.ValueList(values=[values_pb2.Value(s64=1), values_pb2.Value(s64=-2)]))
    point.list.values.append(values_pb2.Value(string="p"))
    assert cluster.client.invoke_values("sink", "server", "echo-record", [point]) == (point, "edge-1")
    ints = [values_pb2.Value(s64=v) for v in (-128, -32768, -(2**31), -(2**63))]
    ints += [values_pb2.Value(u64=v) for v in (255, 65535, 2**32 - 1, 2**64 - 1)]
    echoed, _ = cluster.client.invoke_values("sink", "server", "echo-ints", ints)
    assert echoed is not None and list(echoed.list.values) == ints
