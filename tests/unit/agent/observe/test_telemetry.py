"""Metrics rendering, the agent's telemetry windows, log rings, and the read-only HTTP(S) server."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ssl
import threading
import time
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.dataplane.serving import LOG_FOLLOWERS
from agent.observe.logbook import LogBook
from agent.observe.telemetry import PoolStats, Telemetry
from agent.shell import Agent
from neon.errors import ResourceExhausted
from neon.observe.metrics import LATENCY_BUCKETS, Histogram, HistogramValue, Registry, quantile, render
from neon.rpc.http import HttpServer, Request, Response, client_context, get
from neon.security import pki
from neon.security.tls import Credentials


def test_prometheus_text_format() -> None:
    registry = Registry()
    calls = registry.counter("neon_calls_total", "Calls,\nby outcome", ("app", "outcome"))
    calls.inc("a\\b", 'say "hi"')
    calls.inc("a\\b", 'say "hi"', amount=2)
    latency = registry.histogram("neon_seconds", "Latency", ("app",))
    latency.observe(0.0003, "x")
    latency.observe(20.0, "x")
    text = registry.render()
    assert "# HELP neon_calls_total Calls,\\nby outcome" in text
    assert "# TYPE neon_calls_total counter" in text
    assert 'neon_calls_total{app="a\\\\b",outcome="say \\"hi\\""} 3' in text
    assert 'neon_seconds_bucket{app="x",le="0.00025"} 0' in text
    assert 'neon_seconds_bucket{app="x",le="0.0005"} 1' in text
    assert 'neon_seconds_bucket{app="x",le="10"} 1' in text
    assert 'neon_seconds_bucket{app="x",le="+Inf"} 2' in text
    assert 'neon_seconds_count{app="x"} 2' in text and 'neon_seconds_sum{app="x"} 20.0003' in text
    assert text.endswith("\n")
    with pytest.raises(ValueError, match="takes labels"):
        calls.inc("only-one")


def test_quantiles_interpolate_inside_buckets() -> None:
    hist = Histogram("h", "h")
    for _ in range(90):
        hist.observe(0.0009)  # (0.0005, 0.001]
    for _ in range(10):
        hist.observe(0.04)  # (0.025, 0.05]
    value = hist.value()
    p50 = quantile(0.5, value)
    p99 = quantile(0.99, value)
    assert p50 is not None and 0.0005 < p50 <= 0.001
    assert p99 is not None and 0.025 < p99 <= 0.05
    assert quantile(0.5, HistogramValue((0,) * (len(LATENCY_BUCKETS) + 1), 0.0)) is None
    assert render([hist]).count("h_bucket") == len(LATENCY_BUCKETS) + 1


def test_telemetry_windows_give_rates_and_recent_quantiles() -> None:
    telemetry = Telemetry("edge-1")
    telemetry.watch(lambda: {("app", "parser"): PoolStats(1, 3, 0, 4, 1)}, lambda: {("app", "parser"): 2})
    for _ in range(10):
        telemetry.component_meter("app", "parser").record(0.002, ok=True)
    telemetry.component_meter("app", "parser").record(0.002, ok=False)
    link = ("app", "processor", "parser", "remote")
    telemetry.link_meter(link).record(0.004, ok=True, sent=100, received=40)
    elapsed, comps, links = telemetry.window()
    first = comps[("app", "parser")]
    assert (first.calls, first.errors) == (11, 1)
    assert first.calls_per_second == pytest.approx(11 / elapsed)
    assert 1.0 < first.p50_ms <= 2.5
    assert (links[link].bytes_sent, links[link].bytes_received) == (100, 40)
    # The next window sees only what happened since: no calls, no quantiles, the same totals.
    time.sleep(0.01)
    _, comps, links = telemetry.window()
    assert comps[("app", "parser")].calls_per_second == 0 and comps[("app", "parser")].p50_ms == 0
    assert comps[("app", "parser")].calls == 11 and links[link].bytes_per_second == 0
    text = telemetry.registry.render()
    assert 'neon_component_instances{app="app",component="parser",state="idle"} 3' in text
    assert 'neon_capability_denials{app="app",component="parser"} 2' in text
    assert 'neon_link_bytes_total{app="app",importer="processor",exporter="parser",direction="sent"} 100' in text


def test_log_ring_tail_follow_and_slow_readers() -> None:
    book = LogBook(lines_per_component=3, follower_queue=2)
    key = ("app", "parser")
    for i in range(5):
        book.add(key, "stdout", f"line {i}")
    assert [line.text for line in book.tail(key)] == ["line 2", "line 3", "line 4"]
    assert [line.text for line in book.tail(key, 1)] == ["line 4"]

    follower = book.follow(key, tail=1)
    stream = iter(follower)
    got = [next(stream).text]  # the tail, then live lines from another thread
    writer = threading.Thread(target=lambda: [book.add(key, "stderr", f"live {i}") for i in range(6)])
    writer.start()
    writer.join()
    got += [next(stream).text for _ in range(3)]
    # Closing from another thread (the RPC ended) wakes the reader blocked on the next line, and it stops.
    left: list[str] = []
    reader = threading.Thread(target=lambda: left.extend(line.text for line in stream))
    reader.start()
    time.sleep(0.05)
    follower.close()
    reader.join(5)
    assert not reader.is_alive() and left == [] and book._followers[key] == []
    # Two lines fit the slow reader's queue; then one marker, and the rest is dropped.
    assert got == ["line 4", "live 0", "live 1", "... lines dropped: the reader fell too far behind"]


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.init(directory)
    return directory


def _get(port: int, path: str, creds: Credentials | None, ca: bytes) -> tuple[int, str]:
    ctx = client_context(creds) if creds is not None else ssl.create_default_context(cadata=ca.decode())
    status, _, body = get(f"127.0.0.1:{port}", path, ctx, pki.CONTROLPLANE_NAME)
    return status, body.decode()


def test_https_pages_ask_for_a_certificate_with_a_reading_role(cluster_pki: Path) -> None:
    server_creds = Credentials.from_dir(cluster_pki, "controlplane")

    async def hello(request: Request) -> Response:
        return Response.text(f"hello {request.peer.name} ({request.peer.role}) {request.query}")

    async def scenario() -> list[tuple[int, str]]:
        server = HttpServer(server_creds)
        server.route("/hello", hello, {"viewer", "admin"})
        port = await server.start("127.0.0.1:0")
        ca = server_creds.ca
        ca_dir = cluster_pki
        agent = pki.issue(pki.load(ca_dir, "ca"), "edge-1", "agent")
        calls = [
            ("/hello?x=1", Credentials.from_dir(ca_dir, "viewer")),
            ("/hello", None),
            ("/hello", Credentials(ca, agent.cert, agent.key)),
            ("/nope", Credentials.from_dir(ca_dir, "admin")),
        ]
        results = [await asyncio.to_thread(_get, port, path, creds, ca) for path, creds in calls]
        # Not HTTP at all, and a write: refused with a status, the server keeps serving.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(calls[0][1]), server_hostname=pki.CONTROLPLANE_NAME
        )  # type: ignore[arg-type]
        writer.write(b"POST /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        results.append((int((await reader.read())[9:12]), "POST"))
        writer.close()
        results.append(await asyncio.to_thread(_get, port, "/hello", calls[0][1], ca))
        await server.stop()
        return results

    viewer, anonymous, agent, missing, post, again = asyncio.run(scenario())
    assert viewer == (200, "hello viewer (viewer) {'x': '1'}")
    assert anonymous[0] == 403 and "without a client certificate" in anonymous[1]
    assert agent[0] == 403 and "edge-1 (agent) may not read /hello; it needs a admin or viewer certificate" in agent[1]
    assert missing[0] == 404 and "served here: /hello" in missing[1]
    assert post[0] == 405
    assert again[0] == 200


def test_dashboard_proxy_listens_on_loopback_only(cluster_pki: Path) -> None:
    from cli.dashboard_proxy import DashboardProxy
    from neon.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="loopback only"):
        DashboardProxy("127.0.0.1:1", Credentials.from_dir(cluster_pki, "viewer"), "0.0.0.0:0")
    proxy = DashboardProxy("127.0.0.1:1", Credentials.from_dir(cluster_pki, "viewer"), "127.0.0.1:0")
    proxy.serve_in_background()
    try:
        port = int(proxy.address.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"Host": "evil.example:80"})
        assert conn.getresponse().status == 403  # DNS rebinding: not our Host
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        reply = conn.getresponse()
        assert reply.status == 502 and "did not answer" in reply.read().decode()
        conn.close()
    finally:
        proxy.close()


def test_a_wildcard_metrics_address_is_advertised_with_the_agents_host() -> None:
    from agent.shell import advertised_host

    assert advertised_host("0.0.0.0:7480", "10.0.0.1", "192.0.2.10:7500") == "192.0.2.10"
    assert advertised_host("[::]:7480", "10.0.0.1", "192.0.2.10:7500") == "192.0.2.10"
    assert advertised_host("127.0.0.5:7480", "10.0.0.1", "192.0.2.10:7500") == "127.0.0.5"
    assert advertised_host("", "10.0.0.1", "") == "10.0.0.1"


def test_followed_log_streams_are_capped_per_node_so_they_cannot_take_every_handler_thread(tmp_path: Path) -> None:
    agent = Agent(AgentConfig(name="edge-1", data_dir=tmp_path, insecure=True))
    key = ("app", "parser")
    with contextlib.ExitStack() as held:
        for _ in range(LOG_FOLLOWERS):
            held.enter_context(agent.node.follow_slot(key))
        with pytest.raises(ResourceExhausted, match=rf"edge-1 already streams {LOG_FOLLOWERS} followed logs; stop one"):
            with agent.node.follow_slot(key):
                pass
    with agent.node.follow_slot(key):  # slots come back when streams end
        pass
    agent.runtime.close()


def test_a_meter_counts_into_its_families_and_a_set_does_not_detach_it() -> None:
    telemetry = Telemetry("edge-1")
    meter = telemetry.component_meter("app", "parser")
    assert telemetry.component_meter("app", "parser") is meter  # one per component
    meter.record(0.002, True)
    meter.record(0.003, False)
    assert telemetry.component_calls.value("app", "parser", "ok") == 1
    assert telemetry.component_calls.value("app", "parser", "error") == 1
    assert telemetry.component_seconds.value("app", "parser").count == 2
    telemetry.component_calls.set("app", "parser", "ok", value=10)  # a reset, say: the meter keeps counting into it
    telemetry.component_seconds.set(HistogramValue((0,) * (len(LATENCY_BUCKETS) + 1), 0.0), "app", "parser")
    meter.record(0.002, True)
    assert telemetry.component_calls.value("app", "parser", "ok") == 11
    assert telemetry.component_seconds.value("app", "parser").count == 1
    link = telemetry.link_meter(("app", "processor", "parser", "remote"))
    assert 'importer="processor"' not in telemetry.registry.render()  # made ahead of time: no series yet
    link.record(0.004, True, 100, 40)
    assert telemetry.link_bytes.value("app", "processor", "parser", "sent") == 100
    assert telemetry.link_bytes.value("app", "processor", "parser", "received") == 40
