"""The status model: every phase, its one-line reason and when it last changed, from stored state alone."""

from __future__ import annotations

from typing import Any

from controlplane.reconcile.status import app_status
from controlplane.state.world import AppRecord
from neon import manifest
from neon.model import InstanceReport, NodeInfo

P = "sha256:" + "11" * 32
Q = "sha256:" + "22" * 32
PARSE = "cyber-systems:logs/parser@0.1.0"
APPLIED, PLACED = 100.0, 105.0

NODES = {
    "edge-1": NodeInfo("edge-1", {"tier": "edge"}, "10.0.0.1:7500"),
    "cloud-1": NodeInfo("cloud-1", {"tier": "cloud"}, "10.0.0.2:7500"),
}


def _record(generation: int = 1, replicas: int = 1) -> AppRecord:
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "logs"},
            "spec": {
                "components": [
                    {"name": "parser", "artifact": P, "replicas": replicas},
                    {"name": "processor", "artifact": Q},
                ],
                "links": [{"importer": "processor", "import": PARSE, "exporter": "parser"}],
            },
        }
    )
    return AppRecord(spec=spec, generation=generation, created_at=APPLIED, updated_at=APPLIED)


def _placement(parser: list[str], processor: list[str], generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "generation": generation,
        "components": {
            "parser": {"nodes": parser, "reason": extra.get("reason", ""), "since": PLACED},
            "processor": {"nodes": processor, "reason": "", "since": PLACED},
        },
        "fusion": extra.get("fusion", []),
    }


def _running(node: str, component: str, artifact: str, since: float = 110.0) -> InstanceReport:
    return InstanceReport("logs", component, artifact, "Running", since=since)


def test_a_new_application_is_placing_then_deploying_then_running() -> None:
    status = app_status(_record(), None, {}, NODES)
    assert (status["phase"], status["since"]) == ("Placing", APPLIED)
    assert {c["phase"] for c in status["components"]} == {"Placing"}
    assert status["components"][0]["reason"] == "not placed yet"

    placement = _placement(["edge-1"], ["cloud-1"])
    status = app_status(_record(), placement, {}, NODES)
    assert status["phase"] == "Deploying" and status["since"] == PLACED
    replica = status["components"][0]["replicas"][0]
    assert replica == {
        "node": "edge-1",
        "state": "Deploying",
        "reason": "waiting for node edge-1 to start it",
        "since": PLACED,
        "instance": "parser",
    }

    starting = {"edge-1": [InstanceReport("logs", "parser", P, "Starting", "compiling and instantiating", since=107.0)]}
    status = app_status(_record(), placement, starting, NODES)
    parser = status["components"][0]
    assert (parser["phase"], parser["reason"], parser["since"]) == (
        "Deploying",
        "edge-1: compiling and instantiating",
        107.0,
    )

    reports = {"edge-1": [_running("edge-1", "parser", P, 111.0)], "cloud-1": [_running("cloud-1", "processor", Q)]}
    status = app_status(_record(), placement, reports, NODES)
    assert (status["phase"], status["reason"], status["since"]) == ("Running", "", 111.0)
    assert [(c["desired_replicas"], c["ready_replicas"]) for c in status["components"]] == [(1, 1), (1, 1)]
    assert status["links"][0]["routes"] == [
        {"node": "cloud-1", "mode": "remote", "targets": ["edge-1"], "state": "Ready", "reason": ""}
    ]


def test_without_a_leader_nothing_places_it() -> None:
    status = app_status(_record(), None, {}, NODES, leader=False)
    assert status["phase"] == "Pending"
    assert "no control plane leads" in status["components"][0]["reason"]


def test_a_new_generation_is_placing_until_placed() -> None:
    reports = {"edge-1": [_running("edge-1", "parser", P)], "cloud-1": [_running("cloud-1", "processor", Q)]}
    status = app_status(_record(generation=2), _placement(["edge-1"], ["cloud-1"]), reports, NODES)
    assert (status["phase"], status["reason"]) == ("Placing", "generation 2 is being placed")


def test_unschedulable_and_failed_say_why() -> None:
    nowhere = _placement([], ["cloud-1"], reason="no node has label tier=edge (2 nodes filtered by node-selector)")
    status = app_status(_record(), nowhere, {}, NODES)
    assert status["phase"] == "Unschedulable"
    assert status["reason"].startswith("parser: no node has label tier=edge")

    failed = {"edge-1": [InstanceReport("logs", "parser", P, "Failed", "trap: unreachable", since=120.0)]}
    status = app_status(_record(), _placement(["edge-1"], ["cloud-1"]), failed, NODES)
    assert status["phase"] == "Failed" and status["since"] == 120.0
    assert "parser: edge-1: trap: unreachable" in status["reason"]
    # A link whose exporter runs nowhere is broken, and says so (not only when calls fail).
    (route,) = status["links"][0]["routes"]
    assert route["state"] == "Broken" and "parser is not running on edge-1" in route["reason"]


def test_lost_and_unreachable_nodes_degrade_with_their_times() -> None:
    placement = _placement(["edge-1", "cloud-1"], ["cloud-1"])
    record = _record(replicas=2)
    reports = {
        "edge-1": [_running("edge-1", "parser", P)],
        "cloud-1": [_running("cloud-1", "parser", P), _running("cloud-1", "processor", Q)],
    }
    status = app_status(record, placement, reports, {"cloud-1": NODES["cloud-1"]}, unreachable={"edge-1": 130.0})
    parser = status["components"][0]
    assert (parser["phase"], parser["reason"], parser["since"]) == ("Degraded", "edge-1 Unreachable", 130.0)
    assert parser["replicas"][0]["state"] == "Unknown"
    assert (status["phase"], status["reason"]) == ("Degraded", "parser: edge-1 Unreachable")

    status = app_status(record, placement, reports, {"cloud-1": NODES["cloud-1"]})
    assert status["components"][0]["replicas"][0]["state"] == "Lost"
    assert status["phase"] == "Degraded"


def test_fused_members_are_served_by_their_root() -> None:
    fusion = [{"node": "edge-1", "members": ["parser", "processor"], "root": "processor", "artifact": "sha256:ff"}]
    placement = _placement(["edge-1"], ["edge-1"], fusion=fusion)
    reports = {"edge-1": [InstanceReport("logs", "processor", "sha256:ff", "Running", since=140.0)]}
    status = app_status(_record(), placement, reports, NODES)
    assert status["phase"] == "Running"
    parser = status["components"][0]["replicas"][0]
    assert (parser["state"], parser["reason"], parser["instance"]) == ("Running", "fused into processor", "processor")
    assert status["links"][0]["routes"][0]["mode"] == "fused"


def test_a_hot_swap_in_progress_is_deploying_and_names_both_artifacts() -> None:
    reports = {
        "edge-1": [InstanceReport("logs", "parser", "sha256:" + "33" * 32, "Running")],
        "cloud-1": [_running("cloud-1", "processor", Q)],
    }
    status = app_status(_record(), _placement(["edge-1"], ["cloud-1"]), reports, NODES)
    parser = status["components"][0]
    assert parser["phase"] == "Deploying"
    assert parser["replicas"][0]["reason"] == f"node edge-1 is replacing sha256:{'3' * 12} with {P[:19]}"


def test_a_held_rollout_shows_each_nodes_progress_and_the_app_deploying() -> None:
    from controlplane.reconcile.status import with_rollout

    a, b = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32
    held = {"generation": 4, "since": 10.0, "deadline": 310.0, "nodes": {"edge-1": [a, b], "edge-2": [a]}}
    prefetch = {"edge-1": {"ready": [a]}, "edge-2": {"ready": [], "failed": {a: "disk full"}}}
    doc = with_rollout({"phase": "Placing", "reason": "generation 4 is being placed"}, held, prefetch)
    assert doc["phase"] == "Deploying" and doc["reason"] == "generation 4 prefetching (edge-1 1/2, edge-2 0/1)"
    assert doc["rollout"] == {
        "generation": 4,
        "since": 10.0,
        "deadline": 310.0,
        "nodes": [
            {"node": "edge-1", "ready": 1, "total": 2},
            {"node": "edge-2", "ready": 0, "total": 1, "failed": f"{a[:19]}: disk full"},
        ],
    }
    assert with_rollout({"phase": "Running"}, None, prefetch) == {"phase": "Running"}
    replacing = with_rollout({"phase": "Deploying", "reason": "parser: edge-1 is replacing"}, held, prefetch)
    assert replacing["reason"].startswith("generation 4 prefetching")
    assert with_rollout({"phase": "Degraded"}, held, prefetch)["phase"] == "Degraded"
