"""End to end: the log analyzer's pair compiled from C, split, fused, and fused with the Python parser; the
parser compiled from Rust, split from the C processor and fused with the Python one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import AWKWARD_LINES, Cluster, assert_eventually, expected_batch, wait_running, write_pair

pytestmark = pytest.mark.e2e


def test_c_pair_split_and_fused_and_a_c_processor_fused_with_the_python_parser(
    cluster: Cluster, native_guests: dict[str, Path], log_analyzer: dict[str, Path], tmp_path: Path
) -> None:
    client = cluster.client
    assert client is not None
    want = expected_batch(AWKWARD_LINES)

    # C on both sides, processor in the cloud: every parse is forwarded to the edge over gRPC.
    client.apply_file(write_pair(tmp_path, native_guests["parser"], native_guests["processor"], app="c-pair"))
    # A C processor and the Python parser on one node: fused into one component across toolchains.
    client.apply_file(
        write_pair(tmp_path, log_analyzer["parser"], native_guests["processor"], app="mixed", processor_tier="edge")
    )
    wait_running(client, "c-pair")
    wait_running(client, "mixed")

    split = client.get_app("c-pair")
    assert [(r.node, r.mode) for r in split.links[0].routes] == [("cloud-1", "remote")]
    assert client.invoke("c-pair", "processor", "parse-batch", [AWKWARD_LINES]) == (want, "cloud-1")
    assert client.invoke("c-pair", "parser", "parse", ["this line is not a log entry"]) == (
        {"err": "bad timestamp 'this'"},
        "edge-1",
    )

    mixed = client.get_app("mixed")
    (group,) = mixed.fusion
    assert (group.node, list(group.members), group.reason) == ("edge-1", ["parser", "processor"], "")
    assert client.invoke("mixed", "processor", "parse-batch", [AWKWARD_LINES]) == (want, "edge-1")

    # The C processor moves to the edge: the C pair is fused, and answers the same.
    client.apply_file(
        write_pair(tmp_path, native_guests["parser"], native_guests["processor"], app="c-pair", processor_tier="edge")
    )

    def fused() -> None:
        now = client.get_app("c-pair")
        assert now.generation == 2 and now.phase == "Running", f"{now.phase}: {now.reason}"
        assert [(r.node, r.mode) for r in now.links[0].routes] == [("edge-1", "fused")]

    assert_eventually(fused, timeout=60)
    assert client.invoke("c-pair", "processor", "parse-batch", [AWKWARD_LINES]) == (want, "edge-1")
    assert client.invoke("c-pair", "processor", "process-batch", [AWKWARD_LINES]) == (len(want["entries"]), "edge-1")


def test_the_rust_parser_split_from_a_c_processor_and_fused_with_the_python_processor(
    cluster: Cluster, native_guests: dict[str, Path], log_analyzer: dict[str, Path], tmp_path: Path
) -> None:
    client = cluster.client
    assert client is not None
    want = expected_batch(AWKWARD_LINES)
    # Rust on the edge, C in the cloud: each parse is forwarded over gRPC to the Rust guest.
    client.apply_file(write_pair(tmp_path, native_guests["parser-rust"], native_guests["processor"], app="rust-c"))
    # Rust and Python on one node: fused into one component across the two toolchains.
    client.apply_file(
        write_pair(
            tmp_path, native_guests["parser-rust"], log_analyzer["processor"], app="rust-py", processor_tier="edge"
        )
    )
    wait_running(client, "rust-c")
    wait_running(client, "rust-py")
    assert [(r.node, r.mode) for r in client.get_app("rust-c").links[0].routes] == [("cloud-1", "remote")]
    assert client.invoke("rust-c", "processor", "parse-batch", [AWKWARD_LINES]) == (want, "cloud-1")
    assert client.invoke("rust-c", "parser", "parse", ["2026-11-24T08:00:00Z warning x: y"]) == (
        {"ok": {"timestamp": "2026-11-24T08:00:00Z", "level": "warn", "source": "x", "message": "y"}},
        "edge-1",
    )
    (group,) = client.get_app("rust-py").fusion
    assert (group.node, list(group.members), group.reason) == ("edge-1", ["parser", "processor"], "")
    assert client.invoke("rust-py", "processor", "parse-batch", [AWKWARD_LINES]) == (want, "edge-1")
