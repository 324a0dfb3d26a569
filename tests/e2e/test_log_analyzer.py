"""End to end: the log analyzer on an edge and a cloud agent, and its processor-parser pair split across them."""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from cli.devcluster.guests import EXAMPLES
from neon._proto import calls_pb2, dataplane_pb2, dataplane_pb2_grpc, values_pb2
from neon.errors import FailedPrecondition, InvalidManifest, NotFound, NotRunning
from neon.security import pki
from neon.security.pki import AGENT_NAME
from tests.support.helpers import (
    Cluster,
    assert_eventually,
    example_manifest,
    http_request,
    https_get,
    pair_manifest,
    sample,
    wait_running,
)

pytestmark = pytest.mark.e2e

APP = EXAMPLES / "log-analyzer" / "app.yaml"
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    """The example manifest with one text replaced, next to the example's built artifacts."""
    return example_manifest(tmp_path, APP.read_text(), (old, new), name="app.yaml")


def test_the_example_fuses_on_the_edge_and_archives_in_the_cloud(cluster: Cluster) -> None:
    client = cluster.client
    assert client is not None
    applied = client.apply_file(APP)
    assert applied.generation == 1
    wait_running(client, "log-analyzer")

    app = client.get_app("log-analyzer")
    where = {c.name: [r.node for r in c.replicas] for c in app.components}
    edge_only = {name: ["edge-1"] for name in ("gateway", "ingestor", "processor", "parser")}
    assert where == {**edge_only, "archiver": ["cloud-1"]}
    (group,) = app.fusion
    members = ["gateway", "ingestor", "parser", "processor"]
    assert (group.node, list(group.members), group.root) == ("edge-1", members, "gateway")
    assert "also exports cyber-systems:logs/ingestor@0.1.0 (beside its HTTP handler)" in group.note
    modes = {(ln.importer, ln.exporter): [(r.node, r.mode, list(r.targets)) for r in ln.routes] for ln in app.links}
    assert modes == {
        ("gateway", "ingestor"): [("edge-1", "fused", ["edge-1"])],
        ("ingestor", "processor"): [("edge-1", "fused", ["edge-1"])],
        ("processor", "parser"): [("edge-1", "fused", ["edge-1"])],
        ("ingestor", "archiver"): [("edge-1", "remote", ["cloud-1"])],
    }

    # Raw text posted to the edge node's front door: parsed inside the fused component there, the entries
    # cross to the cloud once per batch.
    text = "\n".join(SAMPLE) + "\n"
    edge = next(n for n in client.list_nodes() if n.name == "edge-1")
    assert post(edge.http_url, "/logs", text.encode()) == (200, {"lines": 7, "accepted": 5})
    # level-counts' fields are u64: JSON strings, as proto3's JSON mapping writes 64-bit integers
    counts = {"debug": 1, "info": 2, "warn": 1, "error": 1}
    assert client.invoke("log-analyzer", "archiver", "counts", []) == (_u64(counts), "cloud-1")
    # The ingestor inside the group is still reachable: the group exports it beside the HTTP handler.
    assert client.invoke("log-analyzer", "ingestor", "ingest", [text]) == (5, "edge-1")
    counts = {k: v * 2 for k, v in counts.items()}
    assert client.invoke("log-analyzer", "archiver", "counts", []) == (_u64(counts), "cloud-1")
    many = "\n".join(SAMPLE * 30)  # 210 lines: three batches, three archive calls
    assert client.invoke("log-analyzer", "ingestor", "ingest", [many]) == (150, "edge-1")
    assert client.invoke("log-analyzer", "archiver", "counts", [])[0] == _u64(
        {k: v // 2 * 32 for k, v in counts.items()}
    )
    assert client.invoke("log-analyzer", "ingestor", "ingest", [""]) == (0, "edge-1")
    # The archive is on the archiver's granted volume on the cloud node, nowhere else.
    archive = cluster.workdir / "agents" / "cloud-1" / "volumes" / "log-analyzer" / "archive" / "entries.jsonl"
    assert len(archive.read_text().splitlines()) == 160
    assert not list((cluster.workdir / "agents" / "edge-1").glob("volumes/log-analyzer/*"))

    with pytest.raises(FailedPrecondition, match="runs only fused into gateway on edge-1") as fused:
        client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])
    assert fused.value.attrs["root"] == "gateway"  # FAILED_PRECONDITION: no retry makes it answer
    kinds = [(e.kind, e.component, e.node) for e in client.events(history=100, app="log-analyzer")]
    assert ("InstanceRunning", "gateway", "edge-1") in kinds
    assert ("InstanceRunning", "archiver", "cloud-1") in kinds


def post(url: str, path: str, body: bytes) -> tuple[int, Any]:
    """POST ``body`` to a node's front door; the status and the JSON answer."""
    status, data, _ = http_request(url, "POST", path, body)
    return status, json.loads(data)


def test_split_pair_forwards_each_parse_across_nodes(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    applied = client.apply_file(pair_manifest(tmp_path))
    assert applied.generation == 1
    wait_running(client, "log-analyzer")

    app = client.get_app("log-analyzer")
    where = {c.name: [r.node for r in c.replicas] for c in app.components}
    assert where == {"parser": ["edge-1"], "processor": ["cloud-1"]}
    (link,) = app.links
    assert (link.importer, getattr(link, "import"), link.exporter) == (
        "processor",
        "cyber-systems:logs/parser@0.1.0",
        "parser",
    )
    assert [(r.node, r.mode, list(r.targets)) for r in link.routes] == [("cloud-1", "remote", ["edge-1"])]

    # The processor runs in the cloud; each parse crosses to the edge over gRPC.
    count, node = client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])
    assert (count, node) == (5, "cloud-1")
    assert client.invoke("log-analyzer", "processor", "process-batch", [[]])[0] == 0

    # The edge's data plane answered each parse: the first in a worker thread, and once the parser's
    # calls have shown themselves quick (a moving average), in the thread that received them (neon.rpc.inline).
    edge = next(n for n in client.list_nodes() if n.name == "edge-1")
    viewer = cluster.credentials("viewer")

    def served() -> dict[str, float]:
        status, text = https_get(edge.metrics_address, "/metrics", viewer, AGENT_NAME)
        assert status == 200
        method = "/neon.v1.DataPlane/Call"
        return {t: sample(text, "neon_dataplane_served_total", method=method, thread=t) for t in ("poller", "worker")}

    first = served()
    assert first["poller"] + first["worker"] == len(SAMPLE) and first["worker"] >= 1, first
    batches = 1
    while served()["poller"] == 0 and batches < 30:
        assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])[0] == 5
        batches += 1
    last = served()
    assert last["poller"] > 0 and last["poller"] + last["worker"] == batches * len(SAMPLE), (batches, last)

    # Malformed lines are errors from the parser, typed as result<log-entry, string>.
    result, node = client.invoke("log-analyzer", "parser", "parse", ["this line is not a log entry"])
    assert node == "edge-1"
    assert result == {"err": "bad timestamp 'this'"}
    result, _ = client.invoke("log-analyzer", "parser", "parser.parse", [SAMPLE[2]])
    assert result == {
        "ok": {
            "timestamp": "2026-11-24T08:00:02Z",
            "level": "error",
            "source": "auth",
            "message": "login failed for user bob",
        }
    }

    nodes = {n.name: n for n in client.list_nodes()}
    assert nodes["edge-1"].labels["tier"] == "edge" and nodes["edge-1"].instances == 1
    assert nodes["cloud-1"].labels["tier"] == "cloud" and nodes["cloud-1"].instances == 1

    kinds = [(e.kind, e.component, e.node) for e in client.events(history=100, app="log-analyzer")]
    assert ("Placed", "parser", "") in kinds
    assert ("InstanceRunning", "parser", "edge-1") in kinds
    assert ("InstanceRunning", "processor", "cloud-1") in kinds


def test_concurrent_forwarded_calls_are_coalesced_and_each_gets_its_own_answer(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Four processor instances in the cloud parse at once through one split link: calls that find
    another in flight to the edge go together in one CallBatch, and every invoke still counts its own lines."""
    client = cluster.client
    assert client is not None
    manifest = pair_manifest(tmp_path, ("tier: cloud\n", "tier: cloud\n      runtime:\n        instances: 4\n"))
    client.apply_file(manifest)
    wait_running(client, "log-analyzer")
    cloud = next(n for n in client.list_nodes() if n.name == "cloud-1")
    edge = next(n for n in client.list_nodes() if n.name == "edge-1")
    viewer = cluster.credentials("viewer")
    batches = {"peer": edge.dataplane_address}

    def batched() -> float:
        status, text = https_get(cloud.metrics_address, "/metrics", viewer, AGENT_NAME)
        assert status == 200
        return sample(text, "neon_forwarded_batched_calls_total", **batches)

    with pytest.raises(AssertionError, match="no sample"):
        batched()  # nothing batched yet
    lines = [SAMPLE[i % len(SAMPLE)] for i in range(40)]
    expected = sum(1 for line in lines if not line.startswith("this") and " FATAL " not in line)

    def coalesced() -> None:
        def invoke(_: int) -> tuple[object, str]:
            return client.invoke("log-analyzer", "processor", "process-batch", [lines])

        with futures.ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(invoke, range(8)))
        assert counts == [(expected, "cloud-1")] * 8
        assert batched() > 0

    assert_eventually(coalesced, timeout=60, interval=0)


def test_a_batch_of_calls_gets_one_outcome_per_call_in_order(cluster: Cluster, tmp_path: Path) -> None:
    """CallBatch straight to the edge agent as node cloud-1: a failing call fails only itself."""
    client = cluster.client
    assert client is not None
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")
    edge = next(n for n in client.list_nodes() if n.name == "edge-1")

    def call(text: str, function: str = "parse", component: str = "parser") -> dataplane_pb2.BatchedCall:
        request = dataplane_pb2.CallRequest(
            app="log-analyzer",
            component=component,
            interface="cyber-systems:logs/parser@0.1.0",
            function=function,
            args=[values_pb2.Value(string=text)],
        )
        return dataplane_pb2.BatchedCall(call=request, timeout=5.0)

    batch = dataplane_pb2.CallBatchRequest(
        caller="cloud-1",
        calls=[call(SAMPLE[2]), call("x", function="nope"), call("x", component="processor"), call("this is not")],
    )
    with cluster.channel(edge.dataplane_address, cluster.identity("cloud-1", pki.AGENT)) as channel:
        reply = dataplane_pb2_grpc.DataPlaneStub(channel).CallBatch(batch, timeout=10)
        outcomes = list(reply.outcomes)
        assert [o.code for o in outcomes] == [
            0,
            grpc.StatusCode.NOT_FOUND.value[0],
            grpc.StatusCode.PERMISSION_DENIED.value[0],  # cloud-1 is linked to the parser, not the processor
            0,
        ]
        assert outcomes[0].result.case.index == 0 and outcomes[3].result.case.index == 1  # ok, err
        assert "exports no function" in outcomes[1].message and b"NotFound" in outcomes[1].error
        assert "not linked to log-analyzer/processor" in outcomes[2].message

        # A node speaks only for itself, in a batch as anywhere.
        with pytest.raises(grpc.RpcError) as refused:
            dataplane_pb2_grpc.DataPlaneStub(channel).CallBatch(
                dataplane_pb2.CallBatchRequest(caller="edge-1", calls=[call(SAMPLE[2])]), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_archiver_keeps_as_many_entries_as_its_config_says(cluster: Cluster, tmp_path: Path) -> None:
    """The retention limit is the archiver's config (wasi:config/store): past it by a tenth, the oldest
    entries go; a new limit is a new generation, and applies to the next append. Its level counts, in the
    cluster bucket, count every entry ever archived."""
    client = cluster.client
    assert client is not None
    client.apply_file(_variant(tmp_path, 'retention: "100000"', 'retention: "8"'))
    wait_running(client, "log-analyzer")
    text = "\n".join(SAMPLE) + "\n"  # 5 well-formed entries

    def archived() -> int:  # append returns what the archive holds
        return int(client.invoke("log-analyzer", "archiver", "append", [[]])[0])

    assert client.invoke("log-analyzer", "ingestor", "ingest", [text])[0] == 5 and archived() == 5
    client.invoke("log-analyzer", "ingestor", "ingest", [text])  # 10: past 8 and its tenth, so back to 8
    assert archived() == 8
    assert client.apply_file(_variant(tmp_path, 'retention: "100000"', 'retention: "1000"')).generation == 2

    tries = []

    def past_the_old_limit() -> int:
        tries.append(client.invoke("log-analyzer", "ingestor", "ingest", [text])[0])
        count = archived()
        assert count > 8, "the old limit still applies"
        return count

    # Each try appends 5: the old limit keeps 8, the new one keeps them all (8 + 5 per append since).
    count = assert_eventually(past_the_old_limit, timeout=120, interval=0.5)
    assert count % 5 == 3, f"{count} entries: not 8 plus whole appends"
    counts = client.invoke("log-analyzer", "archiver", "counts", [])[0]
    assert sum(int(v) for v in counts.values()) == 10 + 5 * len(tries), (counts, tries)


def test_the_archivers_counts_survive_its_move_to_another_node(cluster: Cluster) -> None:
    """The level counts live in the application's cluster bucket (etcd, through the control plane), not on the
    archiver's node: when that node is gone and the archiver starts elsewhere, the counts are still there."""
    client = cluster.client
    assert client is not None
    cluster.add_agent("cloud-2", {"tier": "cloud"})
    client.apply_file(APP)
    wait_running(client, "log-analyzer")
    text = "\n".join(SAMPLE) + "\n"
    assert client.invoke("log-analyzer", "ingestor", "ingest", [text])[0] == 5
    counts, first = client.invoke("log-analyzer", "archiver", "counts", [])
    assert counts == _u64({"debug": 1, "info": 2, "warn": 1, "error": 1})

    assert cluster.agents.pop(first).stop() == 0  # the archiver's node goes away for good
    assert_eventually(lambda: _node_state(client, first) == "Unreachable", timeout=60)
    client.delete_node(first)
    other = "cloud-2" if first == "cloud-1" else "cloud-1"

    def moved() -> None:
        app = client.get_app("log-analyzer")
        archiver = next(c for c in app.components if c.name == "archiver")
        assert [(r.node, r.state) for r in archiver.replicas] == [(other, "Running")], archiver

    assert_eventually(moved, timeout=120)
    assert client.invoke("log-analyzer", "archiver", "counts", []) == (_u64(counts), other)
    assert client.invoke("log-analyzer", "ingestor", "ingest", [text])[0] == 5
    doubled = {k: 2 * int(v) for k, v in counts.items()}
    assert client.invoke("log-analyzer", "archiver", "counts", []) == (_u64(doubled), other)


def _node_state(client: Any, name: str) -> str:
    return next((n.state for n in client.list_nodes() if n.name == name), "gone")


def test_delete_stops_instances_on_both_agents(cluster: Cluster) -> None:  # the full example
    client = cluster.client
    assert client is not None
    client.apply_file(APP)
    wait_running(client, "log-analyzer")
    addresses = {n.name: n.dataplane_address for n in client.list_nodes()}

    client.delete_app("log-analyzer")
    with pytest.raises(NotFound):
        client.get_app("log-analyzer")

    def stopped_everywhere() -> None:
        for node, component in (("edge-1", "ingestor"), ("cloud-1", "archiver")):
            reports = cluster.store(lambda s, n=node: s.reports.get_status(n))
            assert not [r for r in reports if r.app == "log-analyzer"], f"{node} still reports {reports}"
            with cluster.channel(addresses[node]) as channel:
                stub = dataplane_pb2_grpc.DataPlaneStub(channel)
                with pytest.raises(grpc.RpcError) as err:
                    stub.Invoke(
                        calls_pb2.InvokeRequest(
                            app="log-analyzer", component=component, function="parse", args_json='["x"]'
                        ),
                        timeout=5,
                    )
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "not running" in err.value.details()

    assert_eventually(stopped_everywhere, timeout=30)
    with pytest.raises(NotFound):
        client.invoke("log-analyzer", "ingestor", "ingest", [""])
    kinds = [e.kind for e in client.events(history=100, app="log-analyzer")]
    assert "Deleted" in kinds and kinds.count("InstanceStopped") == 2


def test_invalid_manifest_is_refused_and_nothing_is_stored(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    with pytest.raises(InvalidManifest) as err:
        client.apply_file(_variant(tmp_path, "exporter: parser", "exporter: parsr"))
    assert err.value.field == "spec.links[3].exporter"
    assert "parsr" in err.value.message
    assert client.list_apps() == []
    world = cluster.store(lambda s: s.read_world())
    assert not world.apps and not world.placements and not world.assigned


def test_unschedulable_component_says_why(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(_variant(tmp_path, "tier: cloud", "tier: space"))

    def unschedulable() -> None:
        app = client.get_app("log-analyzer")
        assert app.phase == "Unschedulable", app.phase
        archiver = {c.name: c for c in app.components}["archiver"]
        assert archiver.reason == "0/2 nodes: 2 tier!=space"
        assert app.reason == "archiver: 0/2 nodes: 2 tier!=space"

    assert_eventually(unschedulable, timeout=30)
    with pytest.raises(NotRunning):
        client.invoke("log-analyzer", "archiver", "counts", [])


def test_colocated_link_runs_locally_with_identical_results(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(pair_manifest(tmp_path, ("tier: cloud", "tier: edge"), name="together.yaml"))
    wait_running(client, "log-analyzer")
    app = client.get_app("log-analyzer")
    assert {c.name: [r.node for r in c.replicas] for c in app.components} == {
        "parser": ["edge-1"],
        "processor": ["edge-1"],
    }
    # Co-located and linked: the pair is fused into one component on edge-1.
    assert [(r.node, r.mode) for r in app.links[0].routes] == [("edge-1", "fused")]
    (group,) = app.fusion
    assert (group.node, list(group.members), group.root) == ("edge-1", ["parser", "processor"], "processor")
    assert group.artifact.startswith("sha256:") and group.reason == ""
    assert {c.name: c.replicas[0].reason for c in app.components}["parser"] == "fused into processor"
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "edge-1")
    with pytest.raises(FailedPrecondition, match="runs only fused into processor on edge-1"):
        client.invoke("log-analyzer", "parser", "parse", ["x"])

    # Moving the processor to the cloud splits the link; results stay the same.
    client.apply_file(pair_manifest(tmp_path))

    def split() -> None:
        now = client.get_app("log-analyzer")
        assert now.generation == 2 and now.phase == "Running", f"{now.phase}: {now.reason}"
        assert [(r.node, r.mode) for r in now.links[0].routes] == [("cloud-1", "remote")]

    assert_eventually(split, timeout=60)
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")


def test_control_plane_validates_on_its_own_and_serves_health(cluster: Cluster) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from neon import manifest
    from neon._proto import control_pb2
    from neon.errors import InvalidArgument, from_rpc_error

    client = cluster.client
    assert client is not None
    spec = manifest.load(APP.read_text(), require_digests=False)
    never_uploaded = spec.with_artifacts(lambda c: "sha256:" + "0" * 64)
    with pytest.raises(InvalidManifest) as err:
        client.apply(never_uploaded)
    assert err.value.field == "spec.components[0].artifact" and "has not been uploaded" in err.value.message
    try:
        client.stub.ApplyApplication(control_pb2.ApplyApplicationRequest(manifest_yaml="spec: [1"), timeout=10)
    except grpc.RpcError as rpc_err:
        assert rpc_err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert isinstance(from_rpc_error(rpc_err), InvalidArgument)
    else:
        raise AssertionError("malformed YAML was accepted")
    assert client.list_apps() == []

    junk = cluster.workdir / "junk.wasm"
    junk.write_bytes(b"\x00asm\x01\x00\x00\x00 not a component")
    with pytest.raises(InvalidArgument, match=r"^junk.wasm: not a valid WebAssembly component"):
        client.upload(junk)
    bad_link = manifest.load(
        APP.read_text()
        .replace("exporter: parser", "exporter: processor")
        .replace("importer: processor", "importer: parser"),
        require_digests=False,
    )
    with pytest.raises(InvalidManifest, match="parser does not import cyber-systems:logs/parser@0.1.0"):
        client.apply(client.resolve_artifacts(bad_link, APP.parent))
    assert client.list_apps() == []

    with cluster.channel(cluster.control) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "neon.v1.Control", "neon.v1.AgentControl"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_heartbeats_keep_the_lease_and_a_killed_agent_loses_it(cluster: Cluster, tmp_path: Path) -> None:
    import time

    client = cluster.client
    assert client is not None
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")
    time.sleep(cluster.node_ttl + 1)  # longer than the lease: only heartbeats keep the nodes listed
    assert {n.name for n in client.list_nodes()} == {"edge-1", "cloud-1"}

    cluster.agents["edge-1"].kill()

    def edge_gone() -> None:
        assert {(n.name, n.state) for n in client.list_nodes()} == {("edge-1", "Unreachable"), ("cloud-1", "Ready")}
        app = client.get_app("log-analyzer")
        assert app.phase == "Unschedulable", app.phase
        assert {c.name: c.reason for c in app.components}["parser"] == (
            "0/2 nodes: 1 tier!=edge, 1 unreachable (not tolerated: node.neon-grid.dev/unreachable:NoExecute)"
        )

    assert_eventually(edge_gone, timeout=cluster.node_ttl + 10)
    kinds = [(e.kind, e.node) for e in client.events(history=200)]
    assert ("NodeUnreachable", "edge-1") in kinds
    with pytest.raises(NotRunning):
        client.invoke("log-analyzer", "parser", "parse", ["x"])
    # The processor stays up on the cloud node; once its routes are updated, forwarded calls
    # fail at once with a clear error (before that, with the dead node's address in it).
    from neon.errors import Unavailable

    def route_dropped() -> None:
        try:
            client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE[:1]])
        except Unavailable as err:
            assert "no node serves log-analyzer/parser" in err.message, err.message
        else:
            raise AssertionError("the call succeeded without a parser")

    assert_eventually(route_dropped, timeout=15)
    del cluster.agents["edge-1"]  # killed on purpose: no clean exit code to check


def test_taints_keep_components_away_until_tolerated(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    cluster.agents["edge-1"].stop()
    del cluster.agents["edge-1"]
    # A stopped agent's node stays, Unreachable, until it is deleted.
    assert_eventually(lambda: _assert_unreachable(cluster, "edge-1"), timeout=cluster.node_ttl + 10)
    client.delete_node("edge-1")
    cluster.add_agent("edge-2", {"tier": "edge"}, extra=["--taint", "dedicated=sensors:NoSchedule"])
    assert_eventually(lambda: _assert_node_names(cluster, {"edge-2", "cloud-1"}), timeout=cluster.node_ttl + 10)
    (edge2,) = [n for n in client.list_nodes() if n.name == "edge-2"]
    assert list(edge2.taints) == ["dedicated=sensors:NoSchedule"] and "volumes" in edge2.capabilities

    client.apply_file(pair_manifest(tmp_path))

    def refused() -> None:
        parser = {c.name: c for c in client.get_app("log-analyzer").components}["parser"]
        assert parser.reason == "0/2 nodes: 1 taint dedicated=sensors:NoSchedule, 1 tier!=edge", parser.reason

    assert_eventually(refused, timeout=30)
    tolerant = pair_manifest(
        tmp_path,
        (
            "          tier: edge\n",
            "          tier: edge\n        tolerations:\n          - {key: dedicated, operator: Exists}\n",
        ),
        name="tolerant.yaml",
    )
    client.apply_file(tolerant)
    wait_running(client, "log-analyzer")
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")


def _assert_unreachable(cluster: Cluster, name: str) -> None:
    assert cluster.client is not None
    assert [n.state for n in cluster.client.list_nodes() if n.name == name] == ["Unreachable"]


def _assert_node_names(cluster: Cluster, names: set[str]) -> None:
    assert cluster.client is not None
    assert {n.name for n in cluster.client.list_nodes()} == names


def test_agents_report_round_trips_and_link_call_rates(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")

    def measured() -> None:
        client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])
        world = cluster.store(lambda s: s.read_world())
        assert world.rtt.get("edge-1", {}).get("cloud-1", 0.0) > 0.0, world.rtt
        assert world.rtt.get("cloud-1", {}).get("edge-1", 0.0) > 0.0, world.rtt
        assert world.call_rates.get("log-analyzer", {}).get(("processor", "parser"), 0.0) > 0.0, world.call_rates

    assert_eventually(measured, timeout=30, interval=0.2)
    metrics = cluster.store(lambda s: s.reports.all_metrics())
    (link,) = metrics["cloud-1"]["links"]
    assert (link["app"], link["importer"], link["exporter"]) == ("log-analyzer", "processor", "parser")
    assert link["total"] >= len(SAMPLE)  # every parse call was counted on the importer's node
    assert metrics["edge-1"]["links"] == []


def _u64(counts: dict[str, int]) -> dict[str, str]:
    return {k: str(v) for k, v in counts.items()}
