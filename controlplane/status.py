"""Application status, computed from stored state with no I/O.

Status is derived on every read from the desired state (spec, placement) and
the actual state the agents report, so it is true from the first second: a
component nobody placed is Pending or Unschedulable, a placed one is Starting
until its agent says Running, and a node that vanished takes its replicas with it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, Mapping

from controlplane.reconciler import AppRecord
from neon.manifest import AppSpec
from neon.model import InstanceReport, NodeInfo


def served(spec: AppSpec, placement: Mapping[str, Any] | None) -> dict[tuple[str, str], tuple[str, str]]:
    """(node, component) -> (the instance serving it there, the artifact that instance runs).

    A component runs as itself, as the root of a fused component (the fused
    artifact), or inside a fused component only (served by its root).
    """
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for comp in spec.components:
        for node in (placement or {}).get("components", {}).get(comp.name, {}).get("nodes", []):
            out[(node, comp.name)] = (comp.name, comp.artifact)
    for group in (placement or {}).get("fusion", []):
        if not group.get("artifact"):
            continue
        node, root = group["node"], group["root"]
        out[(node, root)] = (root, group["artifact"])
        for member in group["members"]:
            if member != root and member not in group.get("standalone", []):
                out[(node, member)] = (root, group["artifact"])
    return out


def app_status(
    record: AppRecord,
    placement: Mapping[str, Any] | None,
    reports: Mapping[str, list[InstanceReport]],
    nodes: Mapping[str, NodeInfo],
    unreachable: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
    """The ``neon.v1.Application`` message for one application, as a dict.

    ``nodes`` are the nodes holding a lease; a replica on an ``unreachable`` one
    is Unknown: it may well still serve its peers, but nobody can tell.
    """
    spec = record.spec
    placed = (placement or {}).get("components", {})
    current_placement = placement is not None and placement.get("generation") == record.generation
    serving = served(spec, placement)
    by_instance: dict[tuple[str, str], InstanceReport] = {}
    for node, node_reports in reports.items():
        for report in node_reports:
            if report.app == spec.name:
                by_instance[(node, report.component)] = report

    components = []
    phases: list[str] = []
    reasons: list[str] = []
    for comp in spec.components:
        decision = placed.get(comp.name, {})
        replicas = []
        ready = 0
        for node in decision.get("nodes", []):
            instance, artifact = serving.get((node, comp.name), (comp.name, comp.artifact))
            rep = by_instance.get((node, instance))
            if node in unreachable:
                state, why = "Unknown", f"node {node} is Unreachable; kept there while its tolerations allow"
            elif node not in nodes:
                state, why = "Lost", f"node {node} is gone"
            elif rep is None or rep.artifact != artifact:
                state, why = "Starting", "waiting for the agent"
            else:
                state, why = rep.state, rep.reason
                if instance != comp.name and state == "Running":
                    why = f"fused into {instance}"
            if state == "Running":
                ready += 1
            replicas.append({"node": node, "state": state, "reason": why})
        reason = decision.get("reason", "")
        failed = [r for r in replicas if r["state"] == "Failed"]
        unknown = [r["node"] for r in replicas if r["state"] == "Unknown"]
        if not decision:
            phase = "Pending"
            reason = "not placed yet"
        elif not decision.get("nodes"):
            phase = "Unschedulable"
        elif failed:
            phase = "Failed"
            reason = reason or f"{failed[0]['node']}: {failed[0]['reason']}"
        elif ready >= comp.replicas:
            phase = "Running"
        elif ready > 0 or unknown:
            phase = "Degraded"
            reason = reason or (f"{', '.join(unknown)} Unreachable" if unknown else "")
        else:
            phase = "Pending"
            reason = reason or "starting"
        phases.append(phase)
        if reason:
            reasons.append(f"{comp.name}: {reason}")
        components.append(
            {
                "name": comp.name,
                "artifact": comp.artifact,
                "desired_replicas": comp.replicas,
                "ready_replicas": ready,
                "replicas": replicas,
                "reason": reason,
            }
        )

    links = []
    for link in spec.links:
        exporter_nodes = placed.get(link.exporter, {}).get("nodes", [])
        routes = []
        for node in placed.get(link.importer, {}).get("nodes", []):
            local = node in exporter_nodes
            routes.append(
                {
                    "node": node,
                    "mode": "fused"
                    if _fused(serving, node, link.importer, link.exporter)
                    else ("local" if local else "remote"),
                    "targets": [node] if local else list(exporter_nodes),
                }
            )
        links.append(
            {"importer": link.importer, "import": link.import_name, "exporter": link.exporter, "routes": routes}
        )

    for candidate in ("Failed", "Unschedulable", "Pending", "Degraded"):
        if candidate in phases:
            phase = candidate
            break
    else:
        phase = "Running"
    if phase == "Running" and not current_placement:
        phase = "Pending"
        reasons.insert(0, f"generation {record.generation} not placed yet")
    if phase == "Running" and phases.count("Running") == len(phases):
        reasons = []
    return {
        "name": spec.name,
        "generation": record.generation,
        "phase": phase,
        "reason": "; ".join(reasons),
        "components": components,
        "links": links,
        "manifest_yaml": spec.to_yaml(),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "fusion": list((placement or {}).get("fusion", [])),
    }


def _fused(serving: Mapping[tuple[str, str], tuple[str, str]], node: str, importer: str, exporter: str) -> bool:
    """Both ends run inside one fused component on the node."""
    a, b = serving.get((node, importer)), serving.get((node, exporter))
    return a is not None and b is not None and a == b
