"""Native code made once per cluster: the control plane compiles an artifact for the agents' engine key and signs
it; two edges fetch it and neither compiles. Code tampered with at the control plane is refused by the agent (which
compiles for itself and reports it: a CompiledCodeRefused event, the record forgotten); code changed in an agent's
own compiled cache is refused there and fetched again."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest

from neon._proto import calls_pb2, dataplane_pb2_grpc
from neon.native.engine_key import local_key
from tests.support.helpers import Cluster, assert_eventually, wait_running

pytestmark = pytest.mark.e2e

LINE = "2026-11-24T08:00:00Z warning disk: almost full"
EDGES = ("edge-1", "edge-2")


def _manifest(path: Path, artifact: Path) -> Path:
    path.write_text(
        "apiVersion: neon-grid.dev/v1\nkind: Application\nmetadata: {name: parsing}\nspec:\n  components:\n"
        f"    - {{name: parser, artifact: {artifact}, replicas: 2, placement: {{nodeSelector: {{tier: edge}}}}}}\n"
    )
    return path


def _log(cluster: Cluster, node: str) -> str:
    return cluster.agents[node].log_path.read_text(errors="replace")


def _parses_on(cluster: Cluster, node: str) -> None:
    with cluster.channel(cluster.agents[node].address) as channel:
        request = calls_pb2.InvokeRequest(app="parsing", component="parser", function="parse", args_json=f'["{LINE}"]')
        answer = dataplane_pb2_grpc.DataPlaneStub(channel).Invoke(request, timeout=30).result_json
    assert '"level": "warn"' in answer, f"{node} answered {answer}"


def _start_edge(cluster: Cluster, tmp_path: Path, node: str) -> None:
    cluster.add_agent(node, {"tier": "edge"}, extra=["--cache-dir", str(tmp_path / f"compiled-{node}")])


def test_code_is_compiled_once_by_the_control_plane_and_tampered_code_is_refused_where_it_is_found(
    tmp_path: Path, native_guests: dict[str, Path]
) -> None:
    cluster = Cluster(tmp_path, tmp_path / "unused", agents={}).start()
    try:
        assert cluster.client is not None and cluster.cp is not None
        client, cp = cluster.client, cluster.cp
        for node in EDGES:  # each with a compiled cache of its own: nothing to share but the control plane
            _start_edge(cluster, tmp_path, node)
        artifact = "sha256:" + hashlib.sha256(native_guests["parser"].read_bytes()).hexdigest()
        engine = str(local_key("cranelift"))
        client.apply_file(_manifest(tmp_path / "parsing.yaml", native_guests["parser"]))
        wait_running(client, "parsing")
        for node in EDGES:
            _parses_on(cluster, node)
            assert '"compiled code fetched"' in _log(cluster, node) and '"compiled artifact"' not in _log(cluster, node)
        assert cp.code.made == 1
        record: dict[str, Any] | None = cluster.store(lambda s: s.artifacts.get_code(artifact, engine))
        assert record is not None and record["made_by"] == cp.config.identity

        # Another kind of machine compiles for itself; a compile longer than the ask's wait answers pending.
        arm = dataclasses.replace(local_key("cranelift"), target="aarch64-linux")
        told = cluster.loop.run(cp.code.code_for(artifact, str(arm)))
        assert (told.code, told.pending) == ("", False) and f"agents of {arm} compile" in told.reason
        winch = str(local_key("winch"))
        assert cluster.loop.run(cp.code.code_for(artifact, winch, wait=0)).pending

        def made_for_winch() -> str:
            got = cluster.loop.run(cp.code.code_for(artifact, winch, wait=0))
            assert got.code, f"no code for {winch} yet: {got.reason}"
            return got.code

        made = assert_eventually(made_for_winch, timeout=60)
        assert made != record["code"] and cp.code.made == 2

        # The code blob at the control plane changed on its disk: edge-2, with an empty cache, refuses it.
        cluster.agents["edge-2"].stop()
        blob = cp.blobs.path(record["code"])
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        for old in (tmp_path / "compiled-edge-2").rglob("*.cwasm*"):
            old.unlink()
        _start_edge(cluster, tmp_path, "edge-2")

        def refused_and_compiled() -> None:
            log = _log(cluster, "edge-2")
            assert '"native code from the control plane refused"' in log, "edge-2 has not refused the code yet"
            assert '"compiled artifact"' in log, "edge-2 has not compiled the parser itself yet"
            events = [e for e in client.events(history=100) if e.kind == "CompiledCodeRefused"]
            assert [e.node for e in events] == ["edge-2"], f"events: {events}"
            assert f"arrived as sha256:{hashlib.sha256(data).hexdigest()}" in events[0].message

        assert_eventually(refused_and_compiled, timeout=60)
        assert_eventually(lambda: _parses_on(cluster, "edge-2"), timeout=60)
        assert cluster.store(lambda s: s.artifacts.get_code(artifact, engine)) is None  # forgotten
        assert not blob.exists()

        # edge-1's own cached copy changed on its disk: refused there, and fetched again (made again first).
        cluster.agents["edge-1"].stop()
        (cached,) = (tmp_path / "compiled-edge-1").rglob("*.cwasm")
        changed = bytearray(cached.read_bytes())
        changed[len(changed) // 2] ^= 0xFF
        cached.write_bytes(bytes(changed))
        _start_edge(cluster, tmp_path, "edge-1")

        def fetched_again() -> None:
            log = _log(cluster, "edge-1")
            assert '"compiled cache entry refused;' in log, "edge-1 has not refused its changed cache entry yet"
            assert log.count('"compiled code fetched"') == 2, "edge-1 has not fetched the code again yet"

        assert_eventually(fetched_again, timeout=60)
        assert_eventually(lambda: _parses_on(cluster, "edge-1"), timeout=60)
        assert cp.code.made == 3 and '"compiled artifact"' not in _log(cluster, "edge-1")
    finally:
        cluster.stop()
