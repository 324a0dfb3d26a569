"""Building events; ids sort by time so etcd's key order is event order."""

from __future__ import annotations

import os
import time

from neon.model import Event


def new_event(kind: str, message: str, *, app: str = "", component: str = "", node: str = "") -> Event:
    now = time.time()
    event_id = f"{time.time_ns():020d}-{os.urandom(3).hex()}"
    return Event(id=event_id, time=now, kind=kind, message=message, app=app, component=component, node=node)
