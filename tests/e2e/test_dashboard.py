"""The dashboard in headless Chromium: nodes by tier, the component graph with fusion and remote links,
live status and call rates, each checked against the control API; a screenshot goes to the test output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from tests.support.helpers import Cluster, assert_eventually, wait_running

pytestmark = pytest.mark.e2e

APP = EXAMPLES / "log-analyzer" / "app.yaml"
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text()
CHROMIUM = os.environ.get("NEON_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("NEON_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))
# As the machine's notes say: without these, Chromium tries the closed network at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _proxy(cluster: Cluster, workdir: Path) -> tuple[subprocess.Popen[str], str]:
    """`neon dashboard` as a user runs it, on a free loopback port."""
    ready = workdir / "dashboard.ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neon",
            "--pki",
            str(cluster.pki),
            "--user",
            "viewer",
            "--control",
            cluster.control,
            "dashboard",
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def address() -> str:
        assert proc.poll() is None, proc.communicate()
        assert ready.exists() and ready.read_text()
        return ready.read_text()

    return proc, assert_eventually(address, timeout=20)


def test_dashboard_shows_placement_fusion_links_status_and_rates(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        f"Chromium is not at {CHROMIUM}: ./run test installs Debian's chromium (or set NEON_CHROMIUM)"
    )
    client = cluster.client
    assert client is not None
    client.apply_file(APP)
    wait_running(client, "log-analyzer")
    app = client.get_app("log-analyzer")

    stop = threading.Event()

    def load() -> None:  # live traffic, so that rates are not zero
        while not stop.is_set():
            client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE])
            time.sleep(0.02)

    traffic = threading.Thread(target=load, daemon=True)
    traffic.start()
    proc, address = _proxy(cluster, tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://{address}/")
            page.wait_for_selector("body[data-loaded]")

            # Nodes by tier, each with its state.
            for node in client.list_nodes():
                card = page.locator(f'.node[data-node="{node.name}"]')
                assert card.get_attribute("data-tier") == node.labels["tier"]
                assert card.get_attribute("data-state") == node.state == "Ready"
            assert page.locator('[data-tier-column="edge"] .node').count() == 1
            assert page.locator('[data-tier-column="cloud"] .node').count() == 1

            # The graph: the fused group is one box on edge-1, the archiver alone in the cloud.
            (group,) = app.fusion
            fused = page.locator(f'.instance[data-on="{group.node}"][data-fused="true"]')
            assert fused.count() == 1
            assert fused.get_attribute("data-members") == ",".join(sorted(group.members))
            assert fused.get_attribute("data-state") == "Running"
            assert page.locator('.instance[data-on="cloud-1"][data-instance="log-analyzer/archiver"]').count() == 1

            # Links: only the remote one is drawn between boxes, from edge-1 to cloud-1, as the API routes it.
            routes = [(lk.importer, lk.exporter, r) for lk in app.links for r in lk.routes]
            remote = [(i, e, r) for i, e, r in routes if r.mode == "remote"]
            drawn = page.locator("svg#links path[data-link]")
            assert drawn.count() == sum(len(r.targets) for _, _, r in remote) == 1
            path = drawn.first
            assert path.get_attribute("data-link") == "log-analyzer/ingestor>archiver"
            assert (
                path.get_attribute("data-mode"),
                path.get_attribute("data-from"),
                path.get_attribute("data-to"),
            ) == (
                "remote",
                "edge-1",
                "cloud-1",
            )
            assert {r.mode for _, _, r in routes} == {"fused", "remote"}

            # Live status and call rates.
            assert page.locator('[data-app="log-analyzer"] [data-app-phase]').inner_text() == app.phase == "Running"
            for comp in app.components:
                row = page.locator(f'tr[data-component="log-analyzer/{comp.name}"] [data-phase]')
                assert row.inner_text() == comp.phase

            def rates_shown() -> None:
                # calls into the fused group count at its root (the gateway), whichever member they were for
                text = page.locator('[data-rate="log-analyzer/gateway@edge-1"]').inner_text()
                assert text.endswith("ms") and not text.startswith("0.0/s"), text
                label = page.locator('[data-link-rate="log-analyzer/ingestor>archiver@edge-1"]').text_content() or ""
                assert label.startswith("remote · ") and "/s" in label and not label.startswith("remote · 0.0/s"), label

            assert_eventually(rates_shown, timeout=20, interval=0.5)

            # HTTP routes, with the URL at the edge node's front door.
            edge_url = next(n.http_url for n in client.list_nodes() if n.name == "edge-1")
            route = page.locator('[data-route="log-analyzer /logs"]').inner_text()
            assert "/logs" in route and "gateway" in route and f"{edge_url}/logs" in route, route
            events = page.locator("#events tr[data-event]")
            assert events.count() > 0
            OUTPUT.mkdir(parents=True, exist_ok=True)
            shot = OUTPUT / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        stop.set()
        traffic.join(10)
        proc.terminate()
        proc.wait(10)
    assert shot.stat().st_size > 10_000
    fault_report.append(f"dashboard: screenshot of the log analyzer in headless Chromium at {shot}")
