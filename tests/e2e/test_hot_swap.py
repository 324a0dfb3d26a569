"""Hot swap: replace one component while calls flow through it, then roll back; zero failed calls."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable

import pytest

from cli.devcluster.guests import EXAMPLES
from tests.support.helpers import Cluster, assert_eventually, example_manifest, pair_manifest, wait_running

pytestmark = pytest.mark.e2e

APP = EXAMPLES / "log-analyzer" / "app.yaml"
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()


class _Load:
    """Calls ``call`` in a loop on a thread, keeping every result and every error."""

    def __init__(self, call: Callable[[], int]) -> None:
        self.results: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._call = call
        self._worker = threading.Thread(target=self._run)
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.results.append(self._call())
            except BaseException as err:  # noqa: BLE001 - every failure is a test failure
                self.errors.append(err)

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(30)


def _starts(cluster: Cluster, node: str, component: str) -> int:
    lines = cluster.agents[node].log_path.read_text().splitlines()
    return sum(1 for line in lines if '"instance running"' in line and json.loads(line).get("component") == component)


def test_swap_and_roll_back_one_component_under_load(cluster: Cluster, parser_v2: Path, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(pair_manifest(tmp_path))
    wait_running(client, "log-analyzer")
    assert client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])[0] == 5

    load = _Load(lambda: client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE])[0])
    results, errors = load.results, load.errors
    try:
        v2 = pair_manifest(tmp_path, ("build/parser.wasm", str(parser_v2)), name="v2.yaml")
        assert client.apply_file(v2).generation == 2

        def latest(value: int) -> None:
            assert results and results[-1] == value, results[-3:]
            assert not errors, errors

        assert_eventually(lambda: latest(6), timeout=90)  # v2 counts the FATAL line
        wait_running(client, "log-analyzer")
        rolled = client.rollback("log-analyzer")
        assert rolled.generation == 3
        assert_eventually(lambda: latest(5), timeout=90)
        served = len(results)
        assert_eventually(lambda: _assert_more(results, served + 5), timeout=30)
    finally:
        load.stop()

    assert errors == []
    assert set(results) == {5, 6} and len(results) > 20
    # Only the parser was replaced (v1, v2, v1 again); the processor on the other node was never touched.
    assert _starts(cluster, "edge-1", "parser") == 3
    assert _starts(cluster, "cloud-1", "processor") == 1
    kinds = [e.kind for e in client.events(history=200, app="log-analyzer")]
    assert "RolledBack" in kinds


def _assert_more(results: list[int], count: int) -> None:
    assert len(results) >= count


def test_swap_inside_a_fused_group_recomposes_only_it_under_load(
    cluster: Cluster, parser_v2: Path, tmp_path: Path
) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(
        APP
    )  # the full example: gateway + ingestor + processor + parser fused on the edge, archiver in the cloud
    wait_running(client, "log-analyzer")
    (before,) = client.get_app("log-analyzer").fusion
    assert before.artifact and before.members == ["gateway", "ingestor", "parser", "processor"]
    text = "\n".join(SAMPLE)

    load = _Load(lambda: client.invoke("log-analyzer", "ingestor", "ingest", [text])[0])
    results, errors = load.results, load.errors
    try:
        assert_eventually(lambda: _assert_more(results, 3), timeout=30)
        v2 = example_manifest(tmp_path, APP.read_text(), ("build/parser.wasm", str(parser_v2)), name="v2.yaml")
        assert client.apply_file(v2).generation == 2

        def latest(value: int) -> None:
            assert results and results[-1] == value, results[-3:]
            assert not errors, errors

        assert_eventually(lambda: latest(6), timeout=90)  # v2 counts the FATAL line
        served = len(results)
        assert_eventually(lambda: _assert_more(results, served + 5), timeout=30)
    finally:
        load.stop()

    assert errors == []
    assert set(results) == {5, 6}
    app = client.get_app("log-analyzer")
    (after,) = app.fusion
    # The group was composed again with the new parser, and still serves fused.
    assert after.artifact.startswith("sha256:") and after.artifact != before.artifact and after.reason == ""
    assert {(ln.importer, r.mode) for ln in app.links for r in ln.routes} == {
        ("gateway", "fused"),
        ("ingestor", "fused"),
        ("processor", "fused"),
        ("ingestor", "remote"),
    }
    # The fused component (named after its root) was replaced once; the archiver was never touched.
    assert _starts(cluster, "edge-1", "gateway") == 2
    assert _starts(cluster, "cloud-1", "archiver") == 1
    assert [_starts(cluster, "edge-1", member) for member in ("ingestor", "parser", "processor")] == [0, 0, 0]


def test_rollback_says_what_it_cannot_do(cluster: Cluster) -> None:
    from neon.errors import NotFound

    client = cluster.client
    assert client is not None
    client.apply_file(APP)
    with pytest.raises(NotFound, match=r"has no generation before 1 to roll back to \(kept: 1\)"):
        client.rollback("log-analyzer")
    with pytest.raises(NotFound, match="does not exist"):
        client.rollback("nope")
