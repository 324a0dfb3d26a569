"""End to end: a standard wasi:http component applied with routes and served at the edge node's front door,
agents as separate processes, a real HTTP client; outbound HTTP to an allowed loopback server and a denied
one (a CapabilityDenied event); and routes another application claims refused at apply."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cli.devcluster.guests import build_hello_http
from neon import __version__
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import InvalidManifest
from neon.security import pki
from neon.security.tls import Credentials
from tests.support.helpers import Cluster, assert_eventually, http_request, wait_running
from tests.support.raw_http import exchange

pytestmark = pytest.mark.e2e

MANIFEST = """\
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: {name}}}
spec:
  components:
    - name: web
      artifact: {artifact}
      placement: {{nodeSelector: {{tier: edge}}}}
      http:
        routes: [{routes}]
        instances: {instances}
        maxBodySize: 24Mi
      grants:
        allowedOutboundHosts: ["http://127.0.0.1:{port}"]
"""


def get(url: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    status, data, _ = http_request(url, "POST" if body is not None else "GET", path, body)
    return status, data


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"from upstream"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


def _write(tmp_path: Path, name: str, routes: str, port: int, instances: str = "fresh") -> Path:
    path = tmp_path / f"{name}.yaml"
    artifact = build_hello_http()
    path.write_text(MANIFEST.format(name=name, artifact=artifact, routes=routes, port=port, instances=instances))
    return path


def test_an_http_component_answers_at_the_edge_front_door(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = upstream.server_address[1]
    try:
        client.apply_file(_write(tmp_path, "hello", '"/hello/..."', port))
        wait_running(client, "hello")
        urls = {n.name: n.http_url for n in client.list_nodes()}
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values()), urls
        edge = urls["edge-1"]

        assert get(edge, "/hello/grid") == (200, b"hello, grid (you asked for /hello/grid)\n")
        assert get(edge, "/hello/x", b"posted body") == (200, b"posted body")
        assert get(edge, f"/hello/fetch?url=http://127.0.0.1:{port}/") == (200, b"200\nfrom upstream")

        # The cloud node runs no instance of it: its front door hands the request over the data plane to
        # edge-1 (the route table reaches it with a heartbeat) and says who served it.
        cloud = urls["cloud-1"]

        def handed_over() -> None:
            answer = http_request(cloud, "POST", "/hello/via", b"over the data plane")
            assert answer[:2] == (200, b"over the data plane"), answer
            assert answer[2].get("Via") == "1.1 edge-1", answer[2]

        assert_eventually(handed_over, timeout=30)
        # A body longer than a handed-over request could carry whole before (16 MiB) streams through the
        # data plane both ways, and the guest's trailers come back at the end of the chunked response.
        big = hashlib.sha256(b"seed").digest() * ((20 << 20) // 32)
        cloud_port = urlsplit(cloud).port
        assert cloud_port is not None
        answer = exchange(cloud_port, "POST", "/hello/big", big, {"TE": "trailers"}, timeout=120)
        assert answer.status == 200 and answer.headers.get("via") == "1.1 edge-1", (answer.status, answer.headers)
        assert len(answer.body) == len(big) and answer.body == big, f"{len(answer.body)} of {len(big)} bytes back"
        assert answer.trailers == {"x-echoed-bytes": str(len(big))}, answer.trailers
        assert get(cloud, "/nothing/here")[0] == 404
        _routes_go_out_only_to_an_agent_whose_table_is_old(cluster)

        status, text = get(edge, f"/hello/fetch?url=http://127.0.0.1:{port + 1}/")
        assert status == 502 and b"HttpRequestDenied" in text

        def denied_event() -> None:
            kinds = [(e.kind, e.component) for e in client.events(history=200)]
            assert ("CapabilityDenied", "web") in kinds, kinds

        assert_eventually(denied_event, timeout=30)

        # Another application may not take a route this one serves; nothing of it is stored.
        with pytest.raises(InvalidManifest, match=r"overlaps /hello/\.\.\., which application hello serves"):
            client.apply_file(_write(tmp_path, "copycat", '"/hello/:name"', port))
        assert "copycat" not in {a.name for a in client.list_apps()}

        # A new generation in reuse mode swaps in without a failed request.
        failures: list[tuple[int, bytes]] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                answer = get(edge, "/hello/swap")
                if answer[0] != 200:
                    failures.append(answer)

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            client.apply_file(_write(tmp_path, "hello", '"/hello/..."', port, instances="reuse"))
            assert_eventually(lambda: client.get_app("hello").generation == 2 and _running(client), timeout=60)
            assert_eventually(lambda: get(edge, "/hello/after")[0] == 200, timeout=30)
        finally:
            stop.set()
            worker.join(30)
        assert failures == [], failures[:3]
    finally:
        upstream.shutdown()


def _routes_go_out_only_to_an_agent_whose_table_is_old(cluster: Cluster) -> None:
    """A heartbeat carries the route table only when the agent's version differs (a node that joins, here)."""
    assert cluster.client is not None
    token = cluster.client.create_join_token(120, node="probe-1").token
    csr, key = pki.csr_for("probe-1")
    with cluster.channel(cluster.control) as channel:
        request = control_pb2.JoinRequest(node_name="probe-1", token=token, csr_pem=csr)
        admitted = control_pb2_grpc.JoinStub(channel).Join(request, timeout=30)
    with cluster.channel(cluster.control, Credentials(admitted.ca_pem, admitted.cert_pem, key)) as channel:
        agents = control_pb2_grpc.AgentControlStub(channel)
        joined = agents.Register(
            control_pb2.RegisterRequest(
                name="probe-1",
                labels={"tier": "probe"},
                dataplane_address="127.0.0.1:9",
                memory_bytes=1 << 30,
                instance_slots=1,
                version=__version__,
            ),
            timeout=30,
        )
        first = agents.Heartbeat(control_pb2.HeartbeatRequest(name="probe-1", lease_id=joined.lease_id), timeout=30)
        assert first.routes_changed and first.routes_version, first
        assert [(r.route, r.app, list(r.nodes)) for r in first.routes] == [("/hello/...", "hello", ["edge-1"])]
        again = agents.Heartbeat(
            control_pb2.HeartbeatRequest(name="probe-1", lease_id=joined.lease_id, routes_version=first.routes_version),
            timeout=30,
        )
        assert not again.routes_changed and not again.routes and not again.routes_version, again


def _running(client: Any) -> bool:
    return client.get_app("hello").phase == "Running"
