"""What this node serves, as the data plane needs it: the pool of every component running here, who
may forward calls to each, and the slots of followed log streams. The agent installs and removes
pools; the data plane and local links call through it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Callable

from agent.dataplane.forwarder import get_call_deadline
from agent.observe.logbook import LogBook
from agent.runtime.engine import FunctionRef
from agent.runtime.pool import InstancePool, PoolClosed
from neon.errors import NotRunning, ResourceExhausted

Key = tuple[str, str]  # (app, component)

# Followed log streams held open at once (each holds a handler thread while it waits for lines).
LOG_FOLLOWERS = 8


class Serving:
    """The components running on node ``name``, their callers, and its log book."""

    def __init__(self, name: str, logs: LogBook) -> None:
        self.name = name
        self.logs = logs
        self._pools: dict[Key, InstancePool] = {}
        # A member of a fused group -> the group's key: calls to the member land in the fused component
        # (which exports what its root calls of the member; anything else is not found there).
        self._fused: dict[Key, Key] = {}
        self.lock = threading.Lock()
        self._callers: dict[Key, frozenset[str]] = {}  # from the desired state: who may forward calls here
        # Counts changes to what this node serves (a pool started, swapped or stopped; the callers allowed):
        # the data plane keeps what it looked up per function until it changes.
        self.serving = 0
        self._followers = threading.BoundedSemaphore(LOG_FOLLOWERS)

    # ------------------------------------------------------------ changes --

    def set_callers(self, callers: dict[Key, frozenset[str]]) -> None:
        """Who may forward calls to each component, from a new desired state."""
        self._callers = callers
        with self.lock:
            self.serving += 1

    def install(self, key: Key, pool: InstancePool, members: tuple[str, ...] = ()) -> InstancePool | None:
        """Serve ``key`` from ``pool`` from now on (and, for a fused group, its ``members`` that run nowhere
        else here); the pool it replaces, for the caller to close."""
        with self.lock:
            old = self._pools.get(key)
            self._pools[key] = pool
            self._fused = {m: k for m, k in self._fused.items() if k != key}
            self._fused.update({(key[0], member): key for member in members if member != key[1]})
            self.serving += 1
        return old

    def remove(self, key: Key) -> InstancePool | None:
        """Stop serving ``key``; its pool, for the caller to close."""
        with self.lock:
            pool = self._pools.pop(key, None)
            self._fused = {m: k for m, k in self._fused.items() if k != key}
            self.serving += 1
        return pool

    def remove_all(self) -> list[InstancePool]:
        with self.lock:
            pools, self._pools = list(self._pools.values()), {}
            self.serving += 1
        return pools

    def pools(self) -> dict[Key, InstancePool]:
        with self.lock:
            return dict(self._pools)

    # ------------------------------------------------------------ serving --

    @contextlib.contextmanager
    def follow_slot(self, key: Key) -> Iterator[None]:
        """Hold one of the :data:`LOG_FOLLOWERS` slots while a log stream is followed, or refuse it."""
        if not self._followers.acquire(blocking=False):
            raise ResourceExhausted(
                f"node {self.name} already streams {LOG_FOLLOWERS} followed logs; stop one "
                f"(`neon logs -f`) or read {key[0]}/{key[1]} without --follow",
                node=self.name,
            )
        try:
            yield
        finally:
            self._followers.release()

    def callers(self, app: str, component: str) -> frozenset[str]:
        """The nodes whose forwarded calls to ``app/component`` are accepted here (the desired state's)."""
        return self._callers.get((app, component), frozenset())

    def pool(self, app: str, component: str) -> InstancePool:
        pool = self._pools.get((app, component))  # read without the lock (a dict read): on every call's path
        if pool is None and (app, component) in self._fused:
            pool = self._pools.get(self._fused[(app, component)])
        if pool is None:
            raise NotRunning(
                f"{app}/{component} is not running on node {self.name}",
                app=app,
                component=component,
                node=self.name,
            )
        return pool

    def call(
        self, app: str, component: str, ref: FunctionRef, args: list[Any], lift: Callable[[Any], Any] | None = None
    ) -> Any:
        """Call into a component on this node from a worker thread, within the current call's deadline
        (:func:`agent.dataplane.forwarder.get_call_deadline`); see :meth:`call_within`."""
        return self.call_within(app, component, ref, args, get_call_deadline(), lift)

    def call_within(
        self,
        app: str,
        component: str,
        ref: FunctionRef,
        args: list[Any],
        deadline: float | None,
        lift: Callable[[Any], Any] | None = None,
        pool: InstancePool | None = None,
    ) -> Any:
        """Call into a component on this node from a worker thread, within ``deadline`` (monotonic;
        None: the component's own timeout). The pool records the call's outcome and time.

        A call that waited on a pool that was swapped out (hot swap) moves to the new pool. ``lift``
        reads the result from wasmtime's C value (:meth:`agent.runtime.engine.ComponentInstance.call`);
        ``pool``: the component's pool, when the caller has looked it up already (the data plane keeps it).
        """
        pool = pool or self.pool(app, component)
        try:
            return pool.call(ref, args, deadline, lift)
        except PoolClosed:
            replacement = self.pool(app, component)
            if replacement is pool:
                raise
            return replacement.call(ref, args, deadline, lift)
