"""Prefetch before a rollout swaps anything, with no I/O.

When an application that is already deployed gets a new generation, the artifacts its nodes will run and do
not run yet (a new version, a component moving in, a new fused group) are fetched and compiled first. Until
every node that will run them has them ready, each node keeps the slice it has, with the next generation's
components as its ``prefetch`` list; the placement is not written either. Then every node gets its new slice in
the same pass, so a node on a slow link never drops the old version while it fetches, and no node runs the new
version long before the others.

A node that is unreachable, or that reports it cannot get an artifact ready (with why), is not waited for;
past the application's ``rollout.prefetchTimeout`` the rollout goes ahead anyway. A first deployment, a move
that keeps the generation (a node lost, a rebalance), or a generation whose artifacts every node already has
is not held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controlplane.state.world import AppPlan, World
from neon.model import Assignment, ComponentAssignment
from neon.rollout_spec import RolloutSpec


@dataclass(frozen=True)
class NodeProgress:
    node: str
    ready: int  # artifacts fetched and compiled
    total: int  # artifacts the node will run at the new generation and does not run now
    failed: str = ""  # why one could not be made ready (the node is then not waited for)
    unreachable: bool = False


@dataclass(frozen=True)
class Rollout:
    """A rollout that needed prefetching: the generation, when prefetching began, and each node's progress."""

    generation: int
    since: float
    deadline: float
    nodes: tuple[NodeProgress, ...]
    held: bool  # True: the nodes keep their slices (writes carry the prefetch lists); False: released

    @property
    def late(self) -> list[NodeProgress]:
        """Nodes the rollout went ahead without (not ready when it was released)."""
        return [n for n in self.nodes if n.ready < n.total]


def gate(app_plan: AppPlan, world: World, rollout: RolloutSpec) -> tuple[AppPlan, Rollout | None]:
    """The plan to write for ``app_plan``'s application: as computed, or held while its nodes prefetch (what
    each node has ready is in ``world.prefetched`` and ``world.prefetch_failed``)."""
    stored = {node: Assignment.from_dict(doc) for node, doc in world.assigned.get(app_plan.app, {}).items()}
    target_generation = max((a.generation for a in app_plan.assignments.values()), default=0)
    current_generation = max((a.generation for a in stored.values()), default=0)
    if not rollout.prefetch or not stored or target_generation <= current_generation:
        return app_plan, None
    ahead = {node: _new_components(stored.get(node), target) for node, target in app_plan.assignments.items()}
    progress = []
    waiting = False
    for node, components in sorted(ahead.items()):
        artifacts = sorted({c.artifact for c in components})
        if not artifacts:
            continue
        problems = world.prefetch_failed.get(node, {})
        failed = "; ".join(f"{a[:19]}: {problems[a]}" for a in artifacts if a in problems)
        have = world.prefetched.get(node, frozenset())
        done = sum(1 for a in artifacts if a in have)
        gone = world.unreachable_for(node) is not None
        progress.append(NodeProgress(node, done, len(artifacts), failed, gone))
        waiting |= done < len(artifacts) and not failed and not gone
    if not progress:
        return app_plan, None
    began = [
        a.prefetch_since for a in stored.values() if a.prefetch_generation == target_generation and a.prefetch_since
    ]
    since = min(began, default=world.now)
    deadline = since + rollout.prefetch_timeout
    if not waiting or world.now >= deadline:
        return app_plan, Rollout(target_generation, since, deadline, tuple(progress), held=False)
    held: dict[str, Assignment] = dict(stored)
    for node, components in ahead.items():
        base = stored.get(node) or Assignment(app_plan.app, current_generation)
        held[node] = replace(
            base, prefetch=tuple(components), prefetch_generation=target_generation, prefetch_since=since
        )
    writes = {node: a for node, a in held.items() if world.assigned.get(app_plan.app, {}).get(node) != a.to_dict()}
    waits_for = {node: sorted({c.artifact for c in components}) for node, components in ahead.items() if components}
    plan = replace(
        app_plan,
        assignments=held,
        writes=writes,
        remove_from=frozenset(),
        placement_changed=False,
        fusion_changed=False,
        holding={"generation": target_generation, "since": since, "deadline": deadline, "nodes": waits_for},
    )
    return plan, Rollout(target_generation, since, deadline, tuple(progress), held=True)


def _new_components(running: Assignment | None, target: Assignment) -> list[ComponentAssignment]:
    """The components of ``target`` whose artifacts the node does not run now."""
    have = {c.artifact for c in running.components} if running is not None else set()
    return [c for c in target.components if c.artifact not in have]
