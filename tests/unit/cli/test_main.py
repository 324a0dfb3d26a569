"""The neon CLI against a real cluster, and `neon dev` end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from tests.support.helpers import Cluster, neon_cli

pytestmark = pytest.mark.e2e

APP = EXAMPLES / "log-analyzer" / "app.yaml"


def SIGN(cluster: Cluster) -> list[str]:  # noqa: N802 - reads as a constant at the call sites
    return ["--sign-with", str(cluster.pki / "publisher.key")]


def neon(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return neon_cli(cluster, *args, timeout=timeout)


def test_apply_get_invoke_delete_through_the_cli(cluster: Cluster) -> None:
    applied = neon(cluster, "apply", "-f", str(APP), "--wait", *SIGN(cluster))
    assert applied.returncode == 0, applied.stderr
    assert "application/log-analyzer applied (generation 1)" in applied.stdout
    assert "application/log-analyzer Running after" in applied.stdout.splitlines()[-1]

    shown = neon(cluster, "get", "app", "log-analyzer", "-o", "wide")
    assert shown.returncode == 0
    assert "on edge-1: Running" in shown.stdout and "on cloud-1: Running" in shown.stdout
    assert "edge-1: gateway + ingestor + parser + processor fused (root gateway)" in shown.stdout
    assert "ingestor --[cyber-systems:logs/archiver@0.1.0]--> archiver: remote (edge-1 -> cloud-1)" in shown.stdout
    edge_url = next(n.http_url for n in cluster.client.list_nodes() if n.name == "edge-1")  # type: ignore[union-attr]
    assert f"/logs -> gateway: {edge_url}/logs" in shown.stdout
    assert "processor --[cyber-systems:logs/parser@0.1.0]--> parser: fused (edge-1 -> edge-1)" in shown.stdout

    listed = neon(cluster, "get", "apps")
    assert listed.stdout.splitlines()[1].split()[:4] == ["log-analyzer", "1", "Running", "gateway:1/1"]
    routes = neon(cluster, "get", "routes").stdout.splitlines()
    assert routes[1].split() == ["/logs", "log-analyzer", "gateway", "edge-1", f"{edge_url}/logs"], routes
    nodes = json.loads(neon(cluster, "get", "nodes", "-o", "json").stdout)
    assert sorted((n["name"], n["labels"]["tier"]) for n in nodes) == [("cloud-1", "cloud"), ("edge-1", "edge")]

    text = (APP.parent / "sample.log").read_text()
    counted = neon(cluster, "invoke", "log-analyzer", "ingestor", "ingest", json.dumps(text))
    assert (counted.returncode, counted.stdout.strip()) == (0, "5"), counted.stderr
    assert "served by edge-1" in counted.stderr
    counts = neon(cluster, "invoke", "log-analyzer", "archiver", "counts")
    # u64 fields as JSON strings (proto3's JSON mapping of 64-bit integers)
    assert json.loads(counts.stdout) == {"debug": "1", "info": "2", "warn": "1", "error": "1"}
    described = neon(cluster, "describe", "component", "log-analyzer/archiver")
    assert described.returncode == 0, described.stderr
    assert "    counts: func() -> level-counts" in described.stdout  # its WIT, from DescribeComponent
    assert "    record level-counts { debug: u64, info: u64, warn: u64, error: u64 }" in described.stdout
    inside = neon(cluster, "invoke", "log-analyzer", "parser", "parse", '"2026-11-24T08:00:00Z INFO a: b"')
    assert inside.returncode == 1 and "runs only fused into gateway on edge-1" in inside.stderr

    events = neon(cluster, "events", "--app", "log-analyzer")
    assert "InstanceRunning" in events.stdout and "archiver placed on cloud-1" in events.stdout
    assert "gateway + ingestor + parser + processor fused on edge-1" in events.stdout

    assert neon(cluster, "delete", "app", "log-analyzer").returncode == 0


def test_cli_errors_are_one_line_and_non_zero(cluster: Cluster, tmp_path: Path) -> None:
    missing = neon(cluster, "get", "app", "nope")
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: application 'nope' does not exist")
    gone = neon(cluster, "delete", "app", "nope")
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    bad_arg = neon(cluster, "invoke", "log-analyzer", "parser", "parse", "not-json")
    assert bad_arg.returncode == 2 and "is not valid JSON" in bad_arg.stderr
    broken = tmp_path / "app.yaml"
    broken.write_text(APP.read_text().replace("replicas", "replica").replace("nodeSelector", "nodeSelectr"))
    refused = neon(cluster, "apply", "-f", str(broken))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: unknown field 'spec.components[0].placement.nodeSelectr'")
    unreachable = subprocess.run(
        [sys.executable, "-m", "neon", "--pki", str(cluster.pki), "--control", "127.0.0.1:1", "get", "apps"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("error:")
    # TLS is not optional: a plaintext CLI is told why it cannot connect; a viewer cannot write.
    plain = neon(cluster, "--insecure", "get", "apps")
    assert plain.returncode == 1 and "hint: the TLS handshake failed" in plain.stderr, plain.stderr
    viewer = neon(cluster, "--user", "viewer", "delete", "app", "nope")
    assert viewer.returncode == 1
    assert viewer.stderr.strip() == (
        "error: viewer (viewer) may not call /neon.v1.Control/DeleteApplication; it needs admin"
    ), viewer.stderr


def test_neon_dev_runs_the_example_and_ctrl_c_stops_everything(tmp_path: Path, log_analyzer: dict[str, Path]) -> None:
    state = tmp_path / "dev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "neon", "dev", "--dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        out = "\n".join(lines)
        assert "gateway  Running  1/1 ready" in out and "on edge-1: Running" in out and "on cloud-1: Running" in out, (
            out
        )
        assert "edge-1: gateway + ingestor + parser + processor fused (root gateway)" in out
        assert "archiver: remote (edge-1 -> cloud-1)" in out
        assert '/logs (the sample log) -> 200 {"lines": 7, "accepted": 5}' in out
        assert "Try:  curl --data-binary @" in out and "sample.log http://127.0.0.1:" in out
        # The archiver's configured retention and its counts (a cluster bucket), then the same counts after it
        # moved to the other cloud node.
        counts = "counts debug 1, info 2, warn 1, error 1"
        assert f"• archiver on cloud-1: retention 100000 entries (its config), {counts} (bucket counts" in out, out
        assert f"• moved the archiver to cloud-2 (generation 2): {counts}, the same" in out, out
        # The dev context is selected: a second terminal needs no flags (tests/conftest.py: NEON_CONFIG).
        assert "• context dev" in out and "      neon get routes" in out
        plain = subprocess.run(
            [sys.executable, "-m", "neon", "get", "apps"], capture_output=True, text=True, timeout=60
        )
        assert plain.returncode == 0 and "log-analyzer" in plain.stdout, plain.stderr
        pids = {p.name: int(p.read_text()) for p in state.glob("logs/*.pid")}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:  # a failed check: stop it as a user would, so that its children go too
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proc.returncode != 0:  # it could not stop them: nothing it started may outlive the test
            for left in state.glob("logs/*.pid"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(left.read_text()), signal.SIGKILL)
    assert sorted(pids) == ["cloud-1.pid", "cloud-2.pid", "controlplane.pid", "edge-1.pid", "etcd.pid"]
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every child is gone
    control = next(line.split()[3] for line in lines if line.startswith("• control plane"))
    host, port = control.rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()


def test_explain_shows_rejections_and_scores(cluster: Cluster) -> None:
    assert neon(cluster, "apply", "-f", str(APP), "--wait", *SIGN(cluster)).returncode == 0
    shown = neon(cluster, "explain", "log-analyzer", "parser")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "parser -> edge-1  (1/1 replicas)"
    header = lines[1].split()
    assert header[:2] == ["NODE", "TOTAL"] and "sticky" in header and "link-cost" in header
    assert lines[2].split()[:2] == ["*", "edge-1"]
    assert lines[-1] == "  rejected 1 node(s) by node-selector: tier!=edge"
    everything = json.loads(neon(cluster, "explain", "log-analyzer", "-o", "json").stdout)
    assert [c["component"] for c in everything] == ["gateway", "ingestor", "processor", "parser", "archiver"]
    archiver = everything[4]
    chosen = [c for c in archiver["candidates"] if c["chosen"]]
    assert [c["node"] for c in chosen] == ["cloud-1"] and chosen[0]["scores"]["sticky"] == 10.0
    missing = neon(cluster, "explain", "log-analyzer", "nope")
    assert missing.returncode == 1 and "has no component 'nope'" in missing.stderr


def test_describe_app_shows_fusion_per_node() -> None:
    from cli.render import describe_app
    from neon._proto import control_pb2

    app = control_pb2.Application(
        name="log-analyzer",
        generation=2,
        phase="Running",
        fusion=[
            control_pb2.FusionGroup(
                node="edge-1", members=["parser", "processor"], root="processor", artifact="sha256:" + "f" * 64
            ),
            control_pb2.FusionGroup(node="edge-2", members=["a", "b", "c"], reason="2 roots (a, b)"),
        ],
    )
    text = describe_app(app, wide=True)
    assert "  edge-1: parser + processor fused (root processor)" in text
    assert "    artifact sha256:" + "f" * 64 in text
    assert "  edge-2: a + b + c not fused: 2 roots (a, b)" in text
