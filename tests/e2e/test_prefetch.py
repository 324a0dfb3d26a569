"""Prefetch before a rollout swaps anything: a new version of a component placed on two edges, one of them on a
slow link (``--fetch-rate``). Until the slow edge has fetched and compiled it, both edges keep serving the old
version (neither swaps early, neither drops it); ``neon get app -o wide`` shows each node's progress; then both
swap, with no failed call on either."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from cli.devcluster.guests import EXAMPLES
from neon._proto import calls_pb2, dataplane_pb2_grpc
from tests.support.helpers import Cluster, assert_eventually, neon_cli, wait_running

pytestmark = pytest.mark.e2e

FATAL = "2026-11-24T08:00:03Z FATAL db: disk on fire"  # v1 refuses the level, v2 takes it
PARSER = EXAMPLES / "log-analyzer" / "build" / "parser.wasm"
RATE = 1536 << 10  # bytes a second for the slow edge: the parser (about 18 MB) takes it about 12 seconds


def _manifest(path: Path, artifact: Path) -> Path:
    path.write_text(
        f"""\
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: parsing}}
spec:
  rollout: {{prefetchTimeout: 5m}}
  components:
    - {{name: parser, artifact: {artifact}, replicas: 2, placement: {{nodeSelector: {{tier: edge}}}}}}
"""
    )
    return path


class _Calls:
    """Parses the FATAL line on one node's data plane in a loop: which version answered, and every failure."""

    def __init__(self, cluster: Cluster, address: str) -> None:
        self.versions: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._channel = cluster.channel(address)
        self._stub = dataplane_pb2_grpc.DataPlaneStub(self._channel)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        request = calls_pb2.InvokeRequest(app="parsing", component="parser", function="parse", args_json=f'["{FATAL}"]')
        while not self._stop.is_set():
            try:
                answer = self._stub.Invoke(request, timeout=30).result_json
            except grpc.RpcError as err:
                self.failures.append(f"{err.code().name}: {err.details()}")
                continue
            self.versions.append((time.time(), "v2" if '"ok"' in answer else "v1"))
            time.sleep(0.02)

    @property
    def latest(self) -> str:
        return self.versions[-1][1] if self.versions else "none"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self._channel.close()


def test_a_rollout_waits_for_the_slow_edge_and_neither_edge_drops_the_old_version(
    cluster: Cluster, parser_v2: Path, tmp_path: Path
) -> None:
    client = cluster.client
    assert client is not None
    slow = cluster.add_agent("edge-2", {"tier": "edge"}, extra=["--fetch-rate", str(RATE)])
    client.apply_file(_manifest(tmp_path / "v1.yaml", PARSER))
    wait_running(client, "parsing", timeout=180)
    edges = {name: _Calls(cluster, cluster.agents[name].address) for name in ("edge-1", "edge-2")}
    try:
        assert_eventually(lambda: _check(all(c.latest == "v1" for c in edges.values()), edges), timeout=60)
        assert client.apply_file(_manifest(tmp_path / "v2.yaml", parser_v2)).generation == 2

        # Held: the fast edge has v2 ready, the slow one is still fetching; both answer with v1.
        def held_with_progress() -> None:
            app = client.get_app("parsing")
            assert app.HasField("rollout") and app.rollout.generation == 2, "no rollout is held"
            progress = {n.node: (n.ready, n.total) for n in app.rollout.nodes}
            assert progress.get("edge-1") == (1, 1) and progress.get("edge-2") == (0, 1), progress
            assert app.phase == "Deploying" and "generation 2 prefetching" in app.reason, (app.phase, app.reason)

        assert_eventually(held_with_progress, timeout=60, interval=0.2)
        shown = neon_cli(cluster, "get", "app", "parsing", "-o", "wide")
        assert shown.returncode == 0, shown.stderr
        assert "Rollout:     generation 2 prefetching" in shown.stdout, shown.stdout
        assert "edge-1: 1/1 artifacts ready  (ready)" in shown.stdout, shown.stdout
        assert "edge-2: 0/1 artifacts ready  (fetching and compiling)" in shown.stdout, shown.stdout
        wide = neon_cli(cluster, "get", "apps", "-o", "wide")
        assert "gen 2: edge-1 1/1, edge-2 0/1" in wide.stdout, wide.stdout
        assert all(c.latest == "v1" for c in edges.values()), {n: c.latest for n, c in edges.items()}

        # The slow edge gets there: both swap, within moments of each other.
        assert_eventually(lambda: _check(all(c.latest == "v2" for c in edges.values()), edges), timeout=180)
        first_v2 = {n: next(t for t, v in c.versions if v == "v2") for n, c in edges.items()}
        fetched = [json.loads(line) for line in slow.log_path.read_text().splitlines() if '"artifact fetched"' in line]
        assert len(fetched) == 2, "the slow edge fetched each version once"
        slow_has_v2 = datetime.fromisoformat(fetched[1]["timestamp"].replace("Z", "+00:00")).timestamp()
        assert first_v2["edge-1"] > slow_has_v2, "the fast edge swapped before the slow one had the new version"
        assert abs(first_v2["edge-1"] - first_v2["edge-2"]) < 15.0, first_v2
        assert not client.get_app("parsing").HasField("rollout")
        wait_running(client, "parsing")
    finally:
        for calls in edges.values():
            calls.stop()
    assert {n: c.failures for n, c in edges.items()} == {"edge-1": [], "edge-2": []}
    kinds = [e.kind for e in client.events(history=200, app="parsing")]
    assert "Prefetching" in kinds and "Prefetched" in kinds, kinds


def _check(ok: bool, edges: dict[str, _Calls]) -> None:
    assert ok, {name: (c.latest, len(c.versions), c.failures[-3:]) for name, c in edges.items()}
