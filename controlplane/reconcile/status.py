"""Application status, computed from stored state with no I/O.

Status is derived on every read from the desired state (spec, placement) and
the actual state the agents report, so it is true from the first second: a
component nobody placed is Pending or Unschedulable, a placed one is Starting
until its agent says Running, and a node that vanished takes its replicas with it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, Mapping, cast

from controlplane.state.world import AppRecord
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


# An application shows its most pressing component phase, in this order.
_PRECEDENCE = ("Failed", "Unschedulable", "Degraded", "Pending", "Placing", "Deploying")


def app_status(
    record: AppRecord,
    placement: Mapping[str, Any] | None,
    reports: Mapping[str, list[InstanceReport]],
    nodes: Mapping[str, NodeInfo],
    unreachable: Mapping[str, float] | AbstractSet[str] = frozenset(),
    leader: bool = True,
) -> dict[str, Any]:
    """The ``neon.v1.Application`` message for one application, as a dict.

    ``nodes`` are the nodes holding a lease; a replica on an ``unreachable`` one
    (name -> since when) is Unknown: it may well still serve its peers, but
    nobody can tell. Without a ``leader`` nothing places new work: it is Pending.
    Each level says when it last changed (``since``): the latest of the times
    its inputs carry (apply, placement, the agents' reports, a node lost).
    """
    spec = record.spec
    gone_since = unreachable if isinstance(unreachable, Mapping) else dict.fromkeys(unreachable, 0.0)
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
        placed_since = float(decision.get("since", 0.0)) or record.updated_at
        replicas = []
        for node in decision.get("nodes", []):
            instance, artifact = serving.get((node, comp.name), (comp.name, comp.artifact))
            replicas.append(_replica(node, instance, artifact, comp.name, by_instance, nodes, gone_since, placed_since))
        ready = sum(1 for r in replicas if r["state"] == "Running")
        phase, reason = _component_phase(decision, replicas, ready, comp.replicas, leader)
        since = max([placed_since, *(r["since"] for r in replicas)]) if decision else record.updated_at
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
                "phase": phase,
                "since": since,
            }
        )

    running_on: set[tuple[str, str]] = set()
    for comp, entry in zip(spec.components, components, strict=True):
        rows = cast(list[dict[str, Any]], entry["replicas"])
        running_on.update((r["node"], comp.name) for r in rows if r["state"] == "Running")
    links = []
    for link in spec.links:
        exporter_nodes = placed.get(link.exporter, {}).get("nodes", [])
        routes = []
        for node in placed.get(link.importer, {}).get("nodes", []):
            local = node in exporter_nodes
            targets = [node] if local else list(exporter_nodes)
            mode = "fused" if _fused(serving, node, link.importer, link.exporter) else ("local" if local else "remote")
            routes.append(
                {
                    "node": node,
                    "mode": mode,
                    "targets": targets,
                    **_route_state(node, link.exporter, targets, mode, running_on, gone_since),
                }
            )
        links.append(
            {"importer": link.importer, "import": link.import_name, "exporter": link.exporter, "routes": routes}
        )

    phase = next((p for p in _PRECEDENCE if p in phases), "Running")
    if phase == "Running" and not current_placement:
        phase = "Placing" if leader else "Pending"
        reasons.insert(0, f"generation {record.generation} " + ("is being placed" if leader else "waits for a leader"))
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
        "since": max([record.updated_at, *(c["since"] for c in components)]),
    }


def _replica(
    node: str,
    instance: str,
    artifact: str,
    component: str,
    by_instance: Mapping[tuple[str, str], InstanceReport],
    nodes: Mapping[str, NodeInfo],
    gone_since: Mapping[str, float],
    placed_since: float,
) -> dict[str, Any]:
    rep = by_instance.get((node, instance))
    since = placed_since
    if node in gone_since:
        state, why = "Unknown", f"node {node} is Unreachable; kept there while its tolerations allow"
        since = max(since, gone_since[node])
    elif node not in nodes:
        state, why = "Lost", f"node {node} is gone"
    elif rep is None:
        state, why = "Deploying", f"waiting for node {node} to start it"
    elif rep.artifact != artifact:
        state, why = "Deploying", f"node {node} is replacing {rep.artifact[:19]} with {artifact[:19]}"
    else:
        state = "Deploying" if rep.state == "Starting" else rep.state
        why = rep.reason
        since = max(since, rep.since)
        if instance != component and state == "Running":
            why = f"fused into {instance}"
    return {"node": node, "state": state, "reason": why, "since": since, "instance": instance}


def _component_phase(
    decision: Mapping[str, Any], replicas: list[dict[str, Any]], ready: int, desired: int, leader: bool
) -> tuple[str, str]:
    reason = decision.get("reason", "")
    failed = [r for r in replicas if r["state"] == "Failed"]
    deploying = [r for r in replicas if r["state"] == "Deploying"]
    unknown = [r["node"] for r in replicas if r["state"] == "Unknown"]
    if not decision:
        if not leader:
            return "Pending", "no control plane leads, so nothing places it (see neon get controlplanes)"
        return "Placing", "not placed yet"
    if not decision.get("nodes"):
        return "Unschedulable", reason
    if failed:
        return "Failed", reason or f"{failed[0]['node']}: {failed[0]['reason']}"
    if ready >= desired:
        return "Running", reason
    if deploying:
        return "Deploying", reason or f"{deploying[0]['node']}: {deploying[0]['reason']}"
    if ready > 0 or unknown:
        return "Degraded", reason or (f"{', '.join(unknown)} Unreachable" if unknown else "")
    lost = [r["node"] for r in replicas if r["state"] == "Lost"]
    return "Degraded", reason or f"{', '.join(lost)} gone"


def _route_state(
    node: str,
    exporter: str,
    targets: list[str],
    mode: str,
    running_on: AbstractSet[tuple[str, str]],
    gone_since: Mapping[str, float],
) -> dict[str, str]:
    """Whether calls over one importer node's route can succeed now (a broken link says so, not only its calls)."""
    if node in gone_since:
        return {"state": "Unknown", "reason": f"node {node} is Unreachable"}
    if mode == "fused":
        return {"state": "Ready", "reason": ""}
    live = [t for t in targets if (t, exporter) in running_on]
    if live:
        return {"state": "Ready", "reason": ""}
    where = ", ".join(targets) or "no node"
    return {"state": "Broken", "reason": f"{exporter} is not running on {where}: calls over this link fail now"}


def _fused(serving: Mapping[tuple[str, str], tuple[str, str]], node: str, importer: str, exporter: str) -> bool:
    """Both ends run inside one fused component on the node."""
    a, b = serving.get((node, importer)), serving.get((node, exporter))
    return a is not None and b is not None and a == b


def with_rollout(
    doc: dict[str, Any], held: Mapping[str, Any] | None, prefetch: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``doc`` (an :func:`app_status`) with what a held rollout waits for, node by node, from what each node
    reports ready. The old generation serves meanwhile: unless something is wrong (Degraded, Failed...), the phase
    is Deploying, and the reason says what the rollout waits for."""
    if not held:
        return doc
    nodes = []
    for node, artifacts in sorted(held.get("nodes", {}).items()):
        report = prefetch.get(node, {})
        ready, failed = set(report.get("ready", ())), report.get("failed", {})
        why = "; ".join(f"{a[:19]}: {failed[a]}" for a in artifacts if a in failed)
        nodes.append({"node": node, "ready": sum(1 for a in artifacts if a in ready), "total": len(artifacts)})
        nodes[-1] |= {"failed": why} if why else {}
    generation = int(held["generation"])
    rollout = {"generation": generation, "since": float(held["since"]), "deadline": float(held["deadline"])}
    out = doc | {"rollout": rollout | {"nodes": nodes}}
    if doc.get("phase") in ("Placing", "Deploying", "Running"):
        progress = ", ".join(f"{n['node']} {n['ready']}/{n['total']}" for n in nodes)
        out |= {"phase": "Deploying", "reason": f"generation {generation} prefetching ({progress})"}
    return out
