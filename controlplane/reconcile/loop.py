"""The reconcile loop, the I/O half beside the pure :func:`controlplane.reconcile.plan.plan`: reflect etcd
into a World, fuse what placement co-locates, plan, write each changed application back in one
transaction, and say what changed in events. Runs on the leading replica only."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Callable

from controlplane.placement import Placer
from controlplane.reconcile.events import new_event
from controlplane.reconcile.plan import NOT_COMPOSED, next_grace_expiry, plan
from controlplane.reconcile.prefetch import Rollout, gate
from controlplane.reconcile.route_table import RouteEntry, route_table
from controlplane.state.store import Store
from controlplane.state.world import Composition, World
from controlplane.wit.composer import Composer
from neon.model import NodeInfo
from neon.observe import log
from neon.policy import UNREACHABLE

_log = log.get("neon.controlplane")


class ReconcileLoop:
    """Plans and writes what every node should run; ``on_pass`` is told how long each pass took."""

    def __init__(
        self,
        store: Store,
        placer: Placer,
        composer: Composer,
        resync_interval: float,
        on_pass: Callable[[float], None],
    ) -> None:
        self.store = store
        self.placer = placer
        self.composer = composer
        self.resync_interval = resync_interval
        self.on_pass = on_pass
        self._dirty = asyncio.Event()
        self.last_pass = 0.0  # seconds the last pass took
        self.last_pass_cpu = 0.0  # of which the event loop's thread was busy (its own work and others' between)
        self._grace_timer: asyncio.TimerHandle | None = None
        self._nodes: dict[str, NodeInfo] = {}
        self._sorted_nodes: list[NodeInfo] = []
        self._endpoints_of: dict[str, set[str]] = {}  # node -> nodes its assignments forward to
        # The cluster's HTTP routes and where they run, for the agents' front doors (sent with heartbeats);
        # no version until this replica has reconciled (a follower sends none).
        self.routes_version: str = ""
        self.routes: tuple[RouteEntry, ...] = ()

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def watch(self, prefix: bytes) -> None:
        """Mark dirty on every change under ``prefix`` in etcd, until cancelled."""
        while True:
            try:
                watch = await self.store.watch_prefix(prefix)
                async for _ in watch:
                    self.mark_dirty()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd hiccups: log, back off, watch again
                _log.warning("watch failed; retrying", prefix=prefix.decode(), error=str(err))
                self.mark_dirty()
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        """Reconcile whenever marked dirty, and every resync interval anyway, until cancelled."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self.resync_interval)
            self._dirty.clear()
            # Coalesce bursts of changes, and wait twice the event loop's time the last pass took: while
            # thousands of agents register, each pass reads and plans every node, and back-to-back passes
            # would leave the loop no time for their heartbeats (passes take at most about a third of it; two
            # seconds at most, so that a change is still acted on soon). The loop's time, not the wall clock's:
            # a pass that waited on etcd or on a composition left the loop to others meanwhile.
            await asyncio.sleep(min(max(0.02, 2 * self.last_pass_cpu), 2.0))
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                await self.reconcile_once()
                self.last_pass = time.perf_counter() - started
                self.last_pass_cpu = time.thread_time() - started_cpu
                self.on_pass(self.last_pass)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - keep reconciling; the next pass retries
                _log.exception("reconcile failed", error=str(err))
                await asyncio.sleep(0.5)
                self.mark_dirty()

    async def reconcile_once(self) -> None:
        """Reflect etcd into the model, plan, and write each changed application back."""
        world = await self._mark_unreachable(await self.store.read_world())
        wake = [next_grace_expiry(world)]
        if world.nodes != self._nodes:
            self._nodes = dict(world.nodes)
            self._sorted_nodes = [n for _, n in sorted(self._nodes.items())]
        by_address = {n.dataplane_address: n.name for n in world.nodes.values()}
        endpoints: dict[str, set[str]] = {}
        for slices in world.assigned.values():
            for node, doc in slices.items():
                for comp in doc.get("components", []):
                    for binding in comp.get("imports", []):
                        endpoints.setdefault(node, set()).update(
                            by_address[a] for a in binding.get("endpoints", []) if a in by_address
                        )
        self._endpoints_of = endpoints
        self.routes_version, self.routes = route_table(world)
        first, _ = plan(world, self.placer)
        compositions = {}
        for draft in first:  # fuse what placement co-locates (cached by inputs), then plan with the results
            spec = world.apps[draft.app].spec
            compositions[draft.app] = {
                g.key: await self.composer.compose(spec, g) for g in draft.groups if g.reason == NOT_COMPOSED
            }
        plans, orphans = plan(world, self.placer, compositions)
        for computed in plans:
            record = world.apps[computed.app]
            app_plan, rollout = gate(computed, world, record.spec.rollout)
            if rollout is not None and rollout.held:
                wake.append(rollout.deadline - world.now)  # go ahead at the deadline, whatever is ready
            if not app_plan.changed:
                continue
            if not await self.store.write_plan(app_plan, record, world):
                self.mark_dirty()  # the app changed under us; the next pass sees it
                continue
            if rollout is not None:
                await self._rollout_event(app_plan.app, rollout, world.now)
            if app_plan.holding is not None:
                continue  # placement and fusion are written (and told) when the rollout goes ahead
            was_fused = {(f["node"], tuple(f["members"])) for f in world.fusion.get(app_plan.app, []) if f["artifact"]}
            for group in app_plan.groups:
                if not group.reason and group.key not in was_fused:
                    note = compositions.get(app_plan.app, {}).get(group.key, Composition()).note
                    msg = f"{' + '.join(group.members)} fused on {group.node} (root {group.root})"
                    msg += f"; {note}" if note else ""
                    await self.store.events.record(new_event("Fused", msg, app=app_plan.app, node=group.node))
                elif group.reason and group.root:
                    msg = f"{' + '.join(group.members)} not fused on {group.node}: {group.reason}"
                    await self.store.events.record(new_event("NotFused", msg, app=app_plan.app, node=group.node))
            for name, decision in app_plan.placement.components.items():
                before = world.placements.get(app_plan.app, {}).get(name, ())
                if tuple(decision.nodes) != tuple(before):
                    where = ", ".join(decision.nodes) or "nowhere"
                    why = f" ({decision.reason})" if decision.reason else ""
                    left = sorted(set(before) - set(decision.nodes))
                    for node in left:
                        if (gone := world.unreachable_for(node)) is not None:
                            why += f"; left {node}, unreachable for {gone:.0f}s"
                    if not decision.nodes:
                        kind, msg = "Unschedulable", f"{name} placed on nowhere{why}"
                    elif left:
                        kind, msg = "Rescheduled", f"{name} moved from {', '.join(before)} to {where}{why}"
                    else:
                        kind, msg = "Placed", f"{name} placed on {where}{why}"
                    await self.store.events.record(new_event(kind, msg, app=app_plan.app, component=name))
        for app, nodes in orphans:
            await self.store.remove_orphan(app, nodes)
        self._wake_for_grace(min((w for w in wake if w is not None), default=None))

    async def _rollout_event(self, app: str, rollout: Rollout, now: float) -> None:
        """Tell a prefetch beginning (the first held write) and ending (the release after a hold)."""
        progress = ", ".join(f"{n.node} {n.ready}/{n.total}" for n in rollout.nodes)
        if rollout.held and rollout.since == now:
            msg = f"generation {rollout.generation}: nodes fetch and compile it before any swap ({progress})"
            await self.store.events.record(new_event("Prefetching", msg, app=app))
        elif not rollout.held and rollout.since < now:
            took = f"{now - rollout.since:.1f}s"
            if not rollout.late:
                msg = f"generation {rollout.generation} ready on every node after {took}; swapping"
                await self.store.events.record(new_event("Prefetched", msg, app=app))
                return
            late = "; ".join(
                f"{n.node} {n.ready}/{n.total}"
                + (f" ({n.failed})" if n.failed else " (unreachable)" if n.unreachable else "")
                for n in rollout.late
            )
            kind = "PrefetchTimedOut" if now >= rollout.deadline else "Prefetched"
            msg = f"generation {rollout.generation} goes ahead after {took} without {late}"
            await self.store.events.record(new_event(kind, msg, app=app))

    async def _mark_unreachable(self, world: World) -> World:
        """Record when each node that lost its lease was found so (durably, so a new leader keeps the clock)."""
        marked = dict(world.unreachable_since)
        for name, since in sorted(world.unreachable_since.items()):
            if since:
                continue
            msg = f"node {name} lost its lease: Unreachable; what does not tolerate {UNREACHABLE} moves now"
            if await self.store.mark_unreachable(name, world.now, new_event("NodeUnreachable", msg, node=name)):
                marked[name] = world.now
        return replace(world, unreachable_since=marked)

    def _wake_for_grace(self, seconds: float | None) -> None:
        """Reconcile again when the first component kept on an unreachable node outstays its toleration, or a
        held rollout's prefetch deadline passes."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._grace_timer = (
            None if seconds is None else asyncio.get_running_loop().call_later(seconds + 0.05, self.mark_dirty)
        )

    def peers_of(self, node: str, limit: int = 64) -> list[NodeInfo]:
        """The nodes ``node`` should measure round trips to: all of them in a small cluster,
        else those its split links forward to."""
        if len(self._nodes) <= limit + 1:  # every other node (the list is rebuilt only when nodes change)
            return [n for n in self._sorted_nodes if n.name != node]
        wanted = sorted(self._endpoints_of.get(node, set()) - {node})
        return [self._nodes[name] for name in wanted if name in self._nodes][:limit]
