"""Building events; ids sort by time so etcd's key order is event order."""

from __future__ import annotations

import os
import time

from neon.model import Event


def new_event(
    kind: str, message: str, *, app: str = "", component: str = "", node: str = "", incident: str = ""
) -> Event:
    """``incident``: the id an agent logged the incident under; it ends the event's id, so the two correlate."""
    now = time.time()
    event_id = f"{time.time_ns():020d}-{incident or os.urandom(3).hex()}"
    return Event(id=event_id, time=now, kind=kind, message=message, app=app, component=component, node=node)
