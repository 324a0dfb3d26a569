"""Monitoring end to end: status, events, metrics (Prometheus and `neon top`), logs and the CLI views,
each checked against what the cluster actually did."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cli.devcluster.guests import EXAMPLES
from neon.errors import DeadlineExceeded
from neon.security.pki import AGENT_NAME, CONTROLPLANE_NAME
from tests.support.helpers import Cluster, assert_eventually, https_get, neon_cli, sample, wait_running

pytestmark = pytest.mark.e2e

APP = EXAMPLES / "log-analyzer" / "app.yaml"
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text()


neon = neon_cli
fetch = https_get


def _node(cluster: Cluster, name: str) -> Any:
    assert cluster.client is not None
    return next(n for n in cluster.client.list_nodes() if n.name == name)


def test_apply_wait_status_events_metrics_logs_and_views_match_the_cluster(
    cluster: Cluster, fault_report: list[str]
) -> None:
    client = cluster.client
    assert client is not None
    started = time.time()
    applied = neon(cluster, "apply", "-f", str(APP), "--wait", "--sign-with", str(cluster.pki / "publisher.key"))
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    # Progress while it converges: per component, as it changes, then Running.
    assert any("Deploying" in line for line in lines), applied.stdout
    assert any(re.search(r"archiver\s+Running\s+1/1", line) for line in lines), applied.stdout
    assert lines[-1].startswith("application/log-analyzer Running after")

    app = client.get_app("log-analyzer")
    assert app.phase == "Running" and started - 1 <= app.since <= time.time()
    for comp in app.components:
        assert comp.phase == "Running" and comp.since >= started - 1
        for replica in comp.replicas:
            assert replica.state == "Running" and replica.since >= started - 1

    # Calls: N ingests, each one batch archived across nodes.
    calls = 4
    for _ in range(calls):
        assert client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE])[0] == 5
    client.invoke("log-analyzer", "archiver", "counts", [])

    # neon top's numbers are the calls made: totals are exact.
    def counted() -> Any:
        metrics = client.metrics("log-analyzer")
        comps = {(m.component, m.node): m for m in metrics.components}
        links = {(m.importer, m.exporter, m.node, m.mode): m for m in metrics.links}
        assert ("gateway", "edge-1") in comps and ("ingestor", "archiver", "edge-1", "remote") in links, metrics
        assert comps[("gateway", "edge-1")].calls == calls
        assert comps[("archiver", "cloud-1")].calls == calls + 1
        remote = links[("ingestor", "archiver", "edge-1", "remote")]
        assert remote.calls == calls and remote.errors == 0
        assert remote.bytes_sent > 0 and remote.bytes_received > 0
        assert comps[("gateway", "edge-1")].instances >= 1
        return metrics

    metrics = assert_eventually(counted, timeout=20, interval=0.2)
    ingest = next(m for m in metrics.components if m.component == "gateway")
    assert sum(ingest.latency_buckets) == calls and ingest.latency_sum > 0
    top = neon(cluster, "top", "log-analyzer")
    assert top.returncode == 0, top.stderr
    assert re.search(r"log-analyzer\s+ingestor -> archiver\s+edge-1\s+remote", top.stdout), top.stdout
    assert re.search(r"log-analyzer\s+processor -> parser\s+edge-1\s+fused", top.stdout), top.stdout
    assert re.search(r"log-analyzer\s+gateway\s+edge-1\s", top.stdout), top.stdout

    # Prometheus, from the agent (mTLS with a viewer certificate) and aggregated by the control plane.
    viewer = cluster.credentials("viewer")
    edge = _node(cluster, "edge-1")
    status, text = fetch(edge.metrics_address, "/metrics", viewer, AGENT_NAME)
    assert status == 200
    assert sample(text, "neon_component_calls_total", app="log-analyzer", component="gateway", outcome="ok") == calls
    assert (
        sample(
            text,
            "neon_link_calls_total",
            app="log-analyzer",
            importer="ingestor",
            exporter="archiver",
            mode="remote",
            outcome="ok",
        )
        == calls
    )
    remote = next(m for m in metrics.links if m.mode == "remote")
    sent = sample(
        text, "neon_link_bytes_total", app="log-analyzer", importer="ingestor", exporter="archiver", direction="sent"
    )
    assert sent == remote.bytes_sent > 0
    assert sample(text, "neon_component_call_seconds_count", app="log-analyzer", component="gateway") == calls
    assert sample(text, "neon_component_instances", app="log-analyzer", component="gateway", state="idle") >= 1
    denied, _ = fetch(edge.metrics_address, "/metrics", None, AGENT_NAME)
    assert denied == 403
    assert cluster.cp is not None
    cp_http = cluster.cp.http_address
    status, text = fetch(cp_http, "/metrics", viewer, CONTROLPLANE_NAME)
    assert status == 200
    assert (
        sample(text, "neon_cluster_component_calls_total", app="log-analyzer", component="gateway", node="edge-1")
        == calls
    )
    assert sample(text, "neon_application_phase", app="log-analyzer", phase="Running") == 1
    assert sample(text, "neon_nodes", state="Ready") == 2
    assert sample(text, "neon_events_total", kind="Applied") >= 1
    status, body = fetch(cp_http, "/sd/agents", viewer, CONTROLPLANE_NAME)
    targets = {g["labels"]["node"]: g["targets"] for g in json.loads(body)}
    assert targets == {n.name: [n.metrics_address] for n in client.list_nodes()}
    fault_report.append(f"metrics: agent and control plane /metrics agree with {calls} ingests; top shows fused links")

    # Events: joins, placements, fusion and starts, each with its own id.
    events = list(client.events(history=200))
    kinds = {(e.kind, e.node or e.component) for e in events}
    assert {("NodeJoined", "edge-1"), ("NodeJoined", "cloud-1")} <= kinds
    assert ("Placed", "archiver") in kinds and ("InstanceRunning", "gateway") in {(e.kind, e.component) for e in events}
    assert len({e.id for e in events}) == len(events)

    # Logs: the processor runs fused into the gateway on edge-1; its stderr (malformed lines) is there.
    got = list(client.logs("log-analyzer", "processor"))
    assert {(line.node, line.component) for line in got} == {("edge-1", "gateway")}
    stderr = [line.text for line in got if line.stream == "stderr"]
    assert len(stderr) == 2 * calls and all(text.startswith("line ") for text in stderr), stderr
    assert any(line.stream == "agent" and line.text.startswith("running sha256:") for line in got)
    tail = neon(cluster, "logs", "processor", "--tail", "2")
    assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 2, tail.stdout
    assert all(line.startswith("[edge-1][gateway] !") for line in tail.stdout.splitlines()), tail.stdout

    # The views: components, a node and a component described as they are.
    shown = neon(cluster, "get", "components", "log-analyzer")
    rows = {line.split()[1]: line.split() for line in shown.stdout.splitlines()[1:]}
    assert rows["archiver"][2:5] == ["Running", "1/1", "cloud-1"] and rows["parser"][4] == "edge-1"
    node = neon(cluster, "describe", "node", "edge-1")
    assert "log-analyzer/parser (inside gateway): Running" in node.stdout, node.stdout
    assert "NodeJoined" in node.stdout and f"Metrics:       {edge.metrics_address}" in node.stdout
    comp = neon(cluster, "describe", "component", "log-analyzer/archiver")
    assert "Phase:       Running" in comp.stdout and "on cloud-1: Running" in comp.stdout, comp.stdout
    assert f"{calls + 1} calls, 0 errors, 0 traps" in comp.stdout, comp.stdout
    assert "serves cyber-systems:logs/archiver@0.1.0 to ingestor: remote from edge-1" in comp.stdout
    missing = neon(cluster, "describe", "node", "nope")
    assert missing.returncode == 1 and "node 'nope' does not exist" in missing.stderr


PROBE_APP = """\
apiVersion: neon-grid.dev/v1
kind: Application
metadata:
  name: probe
spec:
  components:
    - name: probe
      artifact: {artifact}
      placement:
        nodeSelector:
          tier: edge
      runtime:
        timeout: 1s
"""


def test_traps_logs_and_unschedulable_waits_are_reported(
    cluster: Cluster, probe_wasm: Path, tmp_path: Path, fault_report: list[str]
) -> None:
    client = cluster.client
    assert client is not None
    manifest = tmp_path / "probe.yaml"
    manifest.write_text(PROBE_APP.format(artifact=probe_wasm))
    app = client.apply_file(manifest)
    # True from the first second: nothing runs yet, and it says why.
    assert app.phase in ("Placing", "Deploying"), app.phase
    assert app.reason and all(c.phase in ("Placing", "Deploying") for c in app.components)
    wait_running(client, "probe")

    # Follow the component's output while it prints.
    followed: list[Any] = []
    stream = client.logs("probe", "probe", follow=True, timeout=15)  # the deadline ends the stream

    def follow() -> None:
        try:
            for line in stream:
                followed.append(line)
        except Exception:  # noqa: BLE001 - cancelled at the end of the test
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    client.invoke("probe", "probe", "say", ["hello from the probe"])
    assert_eventually(lambda: any(line.text == "out: hello from the probe" for line in followed), timeout=10)

    # A call that runs past its deadline traps: the instance is discarded, and an event names the incident,
    # which `neon events -w` shows as it happens.
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neon",
            "--pki",
            str(cluster.pki),
            "--control",
            cluster.control,
            "events",
            "-w",
            "--app",
            "probe",
            "--history",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    time.sleep(1.0)  # the stream is open before the trap
    with pytest.raises(DeadlineExceeded):
        client.invoke("probe", "probe", "spin", [10**12])

    def trapped() -> Any:
        events = list(client.events(history=200, app="probe"))
        trapped = [e for e in events if e.kind == "Trapped"]
        assert len(trapped) == 1, [(e.kind, e.message) for e in events]
        return trapped[0]

    event = assert_eventually(trapped, timeout=15, interval=0.2)
    incident = event.id.rsplit("-", 1)[1]
    watched: list[str] = []
    threading.Thread(target=lambda: watched.extend(iter(watcher.stdout.readline, "")), daemon=True).start()
    try:

        def shown() -> None:
            lines = [line for line in watched if "Trapped" in line]
            assert lines and f"incident {incident}" in lines[0] and "probe/probe @edge-1" in lines[0], watched

        assert_eventually(shown, timeout=15, interval=0.2)
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert event.node == "edge-1" and f"incident {incident}" in event.message and "deadline" in event.message
    # The event's id leads to the agent's log line about it.
    logged = [json.loads(line) for line in cluster.agents["edge-1"].log_path.read_text().splitlines() if "{" in line]
    (line,) = [doc for doc in logged if doc.get("incident") == incident]
    assert line["event"] == "guest trapped" and line["component"] == "probe" and "deadline" in line["error"]
    lines = [line.text for line in client.logs("probe", "probe")]
    assert any(f"trapped (incident {incident})" in text for text in lines), lines

    def trap_counted() -> None:
        (probe,) = [m for m in client.metrics("probe").components if m.component == "probe"]
        assert probe.traps == 1 and probe.errors == 1 and probe.calls == 2

    assert_eventually(trap_counted, timeout=15, interval=0.2)
    fault_report.append(f"trap: event {event.id} carries incident {incident}, found in the agent's log")

    # An application that cannot be placed: --wait says so and exits non-zero.
    nowhere = tmp_path / "nowhere.yaml"
    nowhere.write_text(
        PROBE_APP.format(artifact=probe_wasm).replace("probe\nspec", "mars\nspec").replace("edge", "mars")
    )
    waited = neon(
        cluster,
        "apply",
        "-f",
        str(nowhere),
        "--wait",
        "--timeout",
        "30",
        "--sign-with",
        str(cluster.pki / "publisher.key"),
    )
    assert waited.returncode == 1, waited.stdout
    assert "application/mars is Unschedulable" in waited.stderr and "tier!=mars" in waited.stderr, waited.stderr
