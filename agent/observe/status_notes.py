"""What the agent adds to the state machine's report of each instance: when it last changed, and the
component's capability denials and traps (counts, the last one, its incident id)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from agent.runtime.denials import DenialLog, Incidents
from neon.model import InstanceReport

Key = tuple[str, str]  # (app, component)


class StatusNotes:
    """Per component: its denial log (of the running pool) and its traps (kept across restarts)."""

    def __init__(self) -> None:
        self.denials: dict[Key, DenialLog] = {}
        self.traps: dict[Key, Incidents] = {}
        self._since: dict[Key, tuple[tuple[str, str, str], float]] = {}  # (state, artifact, reason), since

    def annotated(self, report: InstanceReport) -> InstanceReport:
        """The state machine's report with when it last changed, and the component's denials and traps."""
        key = (report.app, report.component)
        shape = (report.state, report.artifact, report.reason)
        seen = self._since.get(key)
        if seen is None or seen[0] != shape:
            seen = self._since[key] = (shape, time.time())
        extra: dict[str, Any] = {"since": seen[1]}
        denials = self.denials.get(key)
        if denials is not None and denials.count:
            extra.update(denials=denials.count, last_denial=denials.last)
        traps = self.traps.get(key)
        if traps is not None and traps.count:
            extra.update(traps=traps.count, last_trap=traps.last, last_trap_id=traps.last_id)
        return dataclasses.replace(report, **extra)

    def denial_counts(self) -> dict[Key, int]:
        return {key: log.count for key, log in list(self.denials.items()) if log.count}
