"""Agents' status reports taken in: stored, and each change of an instance's state (started, failed,
trapped, denied a capability, stopped) turned into an event."""

from __future__ import annotations

from controlplane.reconcile.events import new_event
from controlplane.state.store import Store
from neon.model import InstanceReport, NodeInfo


class ReportIntake:
    """Remembers each node's last report, to tell what changed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._last: dict[str, dict[tuple[str, str], InstanceReport]] = {}

    def forget(self) -> None:
        """Start over (a newly elected leader): the next report of every node is news."""
        self._last = {}

    async def note(self, node: NodeInfo, reports: list[InstanceReport]) -> None:
        """Store an agent's report and turn its state changes into events."""
        await self.store.reports.put_status(node, reports)
        before = self._last.get(node.name, {})
        now = {(r.app, r.component): r for r in reports}
        for key, rep in sorted(now.items()):
            old = before.get(key)
            if old is None or (old.state, old.artifact) != (rep.state, rep.artifact) or _failed_again(old, rep):
                msg = f"{rep.component} is {rep.state} on {node.name}" + (f": {rep.reason}" if rep.reason else "")
                await self.store.events.record(
                    new_event(f"Instance{rep.state}", msg, app=rep.app, component=rep.component, node=node.name)
                )
            if rep.traps > (old.traps if old is not None else 0):
                more = rep.traps - (old.traps if old is not None else 0)
                count = f"{more} calls trapped, the last" if more > 1 else "a call trapped"
                await self.store.events.record(
                    new_event(
                        "Trapped",
                        f"{count} on {node.name} (incident {rep.last_trap_id}): {rep.last_trap}",
                        app=rep.app,
                        component=rep.component,
                        node=node.name,
                        incident=rep.last_trap_id,
                    )
                )
            if rep.denials > (old.denials if old is not None else 0):
                await self.store.events.record(
                    new_event(
                        "CapabilityDenied",
                        f"{rep.last_denial} (on {node.name}; {rep.denials} so far)",
                        app=rep.app,
                        component=rep.component,
                        node=node.name,
                    )
                )
            if rep.missed_config and rep.missed_config != (old.missed_config if old is not None else ""):
                await self.store.events.record(
                    new_event(
                        "ConfigMissing",
                        f"asked through wasi:config/store for {rep.missed_config}, which its config does not give "
                        f"(answered none; on {node.name}, {rep.config_misses} asks so far); add them to its config",
                        app=rep.app,
                        component=rep.component,
                        node=node.name,
                    )
                )
        for app, comp in sorted(set(before) - set(now)):
            await self.store.events.record(
                new_event("InstanceStopped", f"{comp} stopped on {node.name}", app=app, component=comp, node=node.name)
            )
        self._last[node.name] = now


def _failed_again(old: InstanceReport, new: InstanceReport) -> bool:
    """A Failed instance failing for another reason (a fixed manifest, a new cause) is news too."""
    return new.state == "Failed" and old.reason != new.reason
