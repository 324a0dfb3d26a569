"""What the agent adds to the state machine's report of each instance: when it last changed, and the
component's capability denials and traps (counts, the last one, its incident id), and the config keys it asked
for and was not given."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from agent.platform.config_store import ConfigMisses
from agent.runtime.denials import DenialLog, Incidents
from neon.model import InstanceReport

Key = tuple[str, str]  # (app, component)


class StatusNotes:
    """Per component: its denial log (of the running pool) and its traps (kept across restarts)."""

    def __init__(self) -> None:
        self.denials: dict[Key, DenialLog] = {}
        self.traps: dict[Key, Incidents] = {}
        self.config_misses: dict[Key, ConfigMisses] = {}  # kept across restarts, as traps are
        self._since: dict[Key, tuple[tuple[str, str, str], float]] = {}  # (state, artifact, reason), since

    def for_start(self, key: Key, notify: Callable[[], None]) -> tuple[DenialLog, Incidents, ConfigMisses]:
        """What a start of ``key`` reports to: a new denial log, and its traps and config misses (kept across
        restarts); each calls ``notify`` when it has news."""
        denials = DenialLog(f"{key[0]}/{key[1]}", notify)
        return (
            denials,
            self.traps.setdefault(key, Incidents(notify)),
            self.config_misses.setdefault(key, ConfigMisses(notify)),
        )

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
        misses = self.config_misses.get(key)
        if misses is not None and misses.count:
            extra.update(config_misses=misses.count, missed_config=", ".join(misses.keys))
        return dataclasses.replace(report, **extra)

    def denial_counts(self) -> dict[Key, int]:
        return {key: log.count for key, log in list(self.denials.items()) if log.count}
