"""Faults, for real: an agent killed with SIGKILL loses its lease and its components move."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from cli.devcluster.etcd_launcher import stable_port
from cli.devcluster.guests import EXAMPLES
from tests.support.helpers import Cluster, assert_eventually, pair_manifest, wait_running

pytestmark = pytest.mark.e2e

SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()


def test_a_killed_edge_node_is_replaced_and_calls_follow(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    client = cluster.client
    assert client is not None
    cluster.add_agent("edge-2", {"tier": "edge"})
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")
    (victim,) = [r.node for c in client.get_app("log-analyzer").components if c.name == "parser" for r in c.replicas]
    (survivor,) = {"edge-1", "edge-2"} - {victim}
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")

    # Calls keep coming from the cloud while the parser's node dies; note when they work again.
    outcomes: list[tuple[float, bool]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                ok = client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE], timeout=10)[0] == 5
            except Exception:  # noqa: BLE001 - failures while the node is dead are expected, and counted
                ok = False
            outcomes.append((time.monotonic(), ok))
            time.sleep(0.05)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        killed_at = time.monotonic()
        cluster.agents[victim].kill()  # SIGKILL: no goodbye, only the lease expiring tells

        def moved() -> None:
            app = client.get_app("log-analyzer")
            parser = {c.name: c for c in app.components}["parser"]
            assert [(r.node, r.state) for r in parser.replicas] == [(survivor, "Running")], parser.replicas
            assert outcomes and outcomes[-1][0] > killed_at and outcomes[-1][1], outcomes[-3:]

        assert_eventually(moved, timeout=cluster.node_ttl + 60, interval=0.2)
    finally:
        stop.set()
        worker.join(30)
    del cluster.agents[victim]  # killed on purpose: no clean exit code to check

    events = list(client.events(history=200))
    lost = [e for e in events if e.kind == "NodeUnreachable" and e.node == victim]
    assert lost, [(e.kind, e.node) for e in events]
    served_again = next(t for t, ok in outcomes if t > killed_at and ok)
    failures = sum(1 for t, ok in outcomes if t > killed_at and not ok)
    fault_report.append(
        f"node loss: lease TTL {cluster.node_ttl}s; serving again {served_again - killed_at:.1f}s after SIGKILL "
        f"({failures} failed calls in between)"
    )
    # The processor in the cloud was never restarted: only its route to the parser changed.
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")
    assert {c.name: [r.node for r in c.replicas] for c in client.get_app("log-analyzer").components} == {
        "parser": [survivor],
        "processor": ["cloud-1"],
    }


def test_an_edge_agent_restarted_offline_runs_its_last_desired_state(cluster: Cluster, tmp_path: Path) -> None:
    import grpc

    from neon._proto import calls_pb2, dataplane_pb2_grpc

    client = cluster.client
    assert client is not None
    # The edge agent listens on a fixed port, as a real one does, so peers find it after a restart.
    listen = ["--listen", f"127.0.0.1:{stable_port()}"]
    assert cluster.agents.pop("edge-1").stop() == 0
    cluster.add_agent("edge-1", {"tier": "edge"}, extra=listen)
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")

    port = cluster.stop_controlplane()  # the edge is cut off from its control plane ...
    cluster.agents["edge-1"].kill()  # ... and its agent dies and comes back while it is
    edge = cluster.add_agent("edge-1", {"tier": "edge"}, wait=False, extra=listen)
    edge.wait_ready()
    request = calls_pb2.InvokeRequest(
        app="log-analyzer", component="processor", function="process-batch", args_json=json.dumps([SAMPLE])
    )

    def served_without_control_plane() -> None:
        with cluster.channel(cluster.agents["cloud-1"].address) as channel:
            try:
                reply = dataplane_pb2_grpc.DataPlaneStub(channel).Invoke(request, timeout=10)
            except grpc.RpcError as err:
                raise AssertionError(err.details()) from None  # type: ignore[attr-defined]
        assert reply.result_json == "5"

    # The cloud's processor forwards each parse to the restarted edge agent, which runs what it was last told.
    assert_eventually(served_without_control_plane, timeout=60, interval=0.2)
    assert "resuming the last desired state" in edge.log_path.read_text()

    # The control plane returns: the agent registers again and nothing is started twice.
    cluster.start_controlplane(port)
    wait_running(client, "log-analyzer")
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE]) == (5, "cloud-1")
    log = edge.log_path.read_text()
    restarted_part = log[log.rindex("agent started") :]
    assert restarted_part.count('"instance running"') == 1, restarted_part
    (parser,) = [c for c in client.get_app("log-analyzer").components if c.name == "parser"]
    assert [(r.node, r.state) for r in parser.replicas] == [("edge-1", "Running")]


def test_a_dead_replica_is_retried_elsewhere_only_for_idempotent_functions(
    tmp_path: Path, compiled_cache: Path, log_analyzer: dict[str, Path]
) -> None:
    from neon.errors import Unavailable

    # A long lease: the dead replica stays routed for the whole test.
    cluster = Cluster(tmp_path / "cluster", compiled_cache, node_ttl=30)
    try:
        cluster.start()
        client = cluster.client
        assert client is not None
        cluster.add_agent("edge-2", {"tier": "edge"})
        two_parsers = ("      artifact: build/parser.wasm\n", "      artifact: build/parser.wasm\n      replicas: 2\n")
        idempotent = ("      exporter: parser\n", "      exporter: parser\n      idempotent: [parse]\n")
        client.apply_file(pair_manifest(tmp_path, ("name: log-analyzer", "name: retries"), two_parsers, idempotent))
        client.apply_file(pair_manifest(tmp_path, ("name: log-analyzer", "name: strict"), two_parsers, name="s.yaml"))
        for app in ("retries", "strict"):
            wait_running(client, app)
            (parser,) = [c for c in client.get_app(app).components if c.name == "parser"]
            assert sorted(r.node for r in parser.replicas) == ["edge-1", "edge-2"]

        cluster.agents.pop("edge-1").kill()  # SIGKILL; its lease lives on, and the routes still name it
        # Every batch sends 7 parse calls round robin over both replicas, so each batch meets the dead one.
        with pytest.raises(Unavailable) as err:
            client.invoke("strict", "processor", "process-batch", [SAMPLE], timeout=20)
        assert "not retried on the other 1 replica(s): parse is not marked idempotent" in err.value.message
        for _ in range(5):
            assert client.invoke("retries", "processor", "process-batch", [SAMPLE], timeout=20) == (5, "cloud-1")
        assert [n.state for n in client.list_nodes() if n.name == "edge-1"] == ["Ready"]  # still within the lease
    finally:
        cluster.stop()
