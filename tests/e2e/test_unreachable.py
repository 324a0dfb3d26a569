"""End to end: a node that loses its lease is Unreachable; each component leaves it when its
tolerations say (at once, after tolerationSeconds, or never), and `neon delete node` forgets it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from neon.errors import FailedPrecondition
from tests.support.helpers import Cluster, assert_eventually, pair_manifest, wait_running
from tests.unit.cli.test_main import neon

pytestmark = pytest.mark.e2e

SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
PARSER_PLACEMENT = """    - name: parser
      artifact: build/parser.wasm
      placement:
        nodeSelector:
          tier: edge
"""
GRACE = 4
TOLERATIONS = {
    "moves": "",
    "brief": f"        tolerations: [{{key: node.neon-grid.dev/unreachable, operator: Exists, effect: NoExecute,"
    f" tolerationSeconds: {GRACE}}}]\n",
    "waits": "        tolerations: [{key: node.neon-grid.dev/unreachable, operator: Exists, effect: NoExecute}]\n",
}


def _parser_nodes(cluster: Cluster, app: str) -> list[tuple[str, str]]:
    assert cluster.client is not None
    (parser,) = [c for c in cluster.client.get_app(app).components if c.name == "parser"]
    return [(r.node, r.state) for r in parser.replicas]


def _placed_on(cluster: Cluster, app: str, node: str) -> None:
    assert [n for n, _ in _parser_nodes(cluster, app)] == [node], _parser_nodes(cluster, app)


def _serves(cluster: Cluster, app: str, node: str) -> None:
    assert cluster.client is not None
    assert _parser_nodes(cluster, app) == [(node, "Running")], _parser_nodes(cluster, app)
    assert cluster.client.invoke(app, "processor", "process-batch", [SAMPLE], timeout=10) == (5, "cloud-1")


def test_unreachable_node_keeps_what_tolerates_it_and_only_that(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    client = cluster.client
    assert client is not None
    for app, toleration in TOLERATIONS.items():
        path = pair_manifest(
            tmp_path,
            ("name: log-analyzer", f"name: {app}"),
            (PARSER_PLACEMENT, PARSER_PLACEMENT + toleration),
            name=f"{app}.yaml",
        )
        client.apply_file(path)
    for app in TOLERATIONS:
        wait_running(client, app)
        _placed_on(cluster, app, "edge-1")  # the only edge node so far
    cluster.add_agent("edge-2", {"tier": "edge"})

    cluster.agents.pop("edge-1").kill()  # SIGKILL: only the lease expiring tells

    def unreachable() -> None:
        states = {n.name: n.state for n in client.list_nodes()}
        assert states == {"edge-1": "Unreachable", "edge-2": "Ready", "cloud-1": "Ready"}, states

    assert_eventually(unreachable, timeout=cluster.node_ttl + 15)
    # No toleration: rescheduled at once, and its calls follow.
    assert_eventually(lambda: _serves(cluster, "moves", "edge-2"), timeout=60, interval=0.2)
    # tolerationSeconds: stays, then moves once the grace is over.
    assert_eventually(lambda: _serves(cluster, "brief", "edge-2"), timeout=GRACE + 60, interval=0.2)
    _placed_on(cluster, "waits", "edge-1")  # tolerated for good: still placed on the unreachable node

    events = list(client.events(history=300))
    (marked,) = [e for e in events if e.kind == "NodeUnreachable" and e.node == "edge-1"]
    moves = next(e for e in events if e.kind == "Rescheduled" and e.app == "moves" and "to edge-2" in e.message)
    brief = next(e for e in events if e.kind == "Rescheduled" and e.app == "brief" and "to edge-2" in e.message)
    assert "left edge-1, unreachable for" in moves.message and "left edge-1" in brief.message
    assert moves.time - marked.time < 2.0, (moves.time - marked.time, moves.message)
    assert GRACE <= brief.time - marked.time < GRACE + 2.0, (brief.time - marked.time, brief.message)
    assert not [e for e in events if e.app == "waits" and e.kind in ("Placed", "Rescheduled") and "edge-2" in e.message]
    fault_report.append(
        f"unreachable node: 'moves' left {moves.time - marked.time:.1f}s and 'brief' (tolerationSeconds {GRACE})"
        f" {brief.time - marked.time:.1f}s after the node was marked; 'waits' stayed"
    )

    # The node comes back: it is Ready again, runs what stayed, and nothing that moved.
    cluster.add_agent("edge-1", {"tier": "edge"})
    assert_eventually(lambda: _serves(cluster, "waits", "edge-1"), timeout=60, interval=0.2)
    kinds = [(e.kind, e.node) for e in client.events(history=300)]
    assert ("NodeReady", "edge-1") in kinds
    _placed_on(cluster, "moves", "edge-2")
    _placed_on(cluster, "brief", "edge-2")

    # Forgetting a node is for unreachable ones only; once forgotten, what waited for it moves.
    with pytest.raises(FailedPrecondition, match="node 'cloud-1' is Ready"):
        client.delete_node("cloud-1")
    refused = neon(cluster, "delete", "node", "cloud-1")
    assert refused.returncode != 0 and "stop the agent first" in refused.stderr
    cluster.agents.pop("edge-1").kill()
    assert_eventually(unreachable, timeout=cluster.node_ttl + 15)
    table = neon(cluster, "get", "nodes").stdout
    assert re.search(r"^edge-1\s+Unreachable \(\d+s\)\s+tier=edge", table, re.M), table
    deleted = neon(cluster, "delete", "node", "edge-1")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "node/edge-1 deleted; what it ran is rescheduled")
    assert_eventually(lambda: _serves(cluster, "waits", "edge-2"), timeout=60, interval=0.2)
    assert "edge-1" not in {n.name for n in client.list_nodes()}
