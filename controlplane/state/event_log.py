"""The cluster's events: written, logged, trimmed to the last EVENT_HISTORY, read and watched."""

from __future__ import annotations

import json
from typing import AsyncIterator, Callable

import aetcd

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import EVENT_HISTORY, EVENTS, dump, etcd_key
from neon.model import Event
from neon.observe import log

_log = log.get("neon.events")


class EventLog:
    """The event log in etcd; ``on_record`` is told of each event written."""

    def __init__(self, client: EtcdCalls) -> None:
        self.client = client
        self._seq = 0
        self.on_record: Callable[[Event], None] | None = None  # told of each event recorded

    async def record(self, event: Event) -> None:
        await self.client.put(etcd_key(EVENTS, event.id), dump(event.to_dict()))
        await self.recorded(event)

    async def recorded(self, event: Event) -> None:
        """What follows an event's write: the hook, the log line, and now and then trimming the history."""
        if self.on_record is not None:
            self.on_record(event)
        ids = {k: v for k, v in (("app", event.app), ("component", event.component), ("node", event.node)) if v}
        _log.info(event.message, event_id=event.id, kind=event.kind, **ids)
        self._seq += 1
        if self._seq % 100 == 0:
            await self._trim_events()

    async def _trim_events(self) -> None:
        got = await self.client.get_prefix(EVENTS, keys_only=True)
        keys = sorted(kv.key for kv in got)
        if len(keys) > EVENT_HISTORY:
            await self.client.delete_range(keys[0], keys[len(keys) - EVENT_HISTORY])

    async def recent_events(self, limit: int) -> tuple[int, list[Event]]:
        got = await self.client.get_prefix(EVENTS)
        events = sorted((Event.from_dict(json.loads(kv.value)) for kv in got), key=lambda e: e.id)
        return int(got.header.revision), events[-limit:] if limit > 0 else []

    async def watch_events(self, start_revision: int) -> AsyncIterator[Event]:
        watch = await self.client.watch_prefix(EVENTS, start_revision=start_revision)
        try:
            async for ev in watch:
                if ev.kind == aetcd.rtypes.EventKind.PUT:
                    yield Event.from_dict(json.loads(ev.kv.value))
        finally:
            await watch.cancel()
