"""Instance modes: hand out a component's instances to concurrent calls.

``pooled``: up to ``instances`` warm instances, reused across calls (state in
the guest survives between calls). ``per-call``: a fresh instance for every
call and thrown away after it (the Spin model), at most ``instances`` at once.
In both modes a call that finds every instance busy waits, but only
``max_queue`` calls may wait; the next is refused with ResourceExhausted
rather than piling up. An instance that trapped is never reused.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from agent.runtime.engine import ComponentInstance, ComponentTemplate, FunctionRef
from neon.errors import DeadlineExceeded, NeonGridError, NotRunning, ResourceExhausted
from neon.observe.metrics import Meter, moving_average


class PoolClosed(NotRunning):
    """The pool was replaced or stopped while the call waited; the caller may retry on the new one."""


class InstancePool:
    """The instances of one component on this node."""

    def __init__(
        self,
        template: ComponentTemplate,
        on_trap: Callable[[NeonGridError], None] | None = None,
        meter: Meter | None = None,
    ) -> None:
        """``on_trap`` is told (in the calling thread) of each call that trapped and discarded its instance;
        ``meter`` records each call's outcome and time, waiting for an instance included."""
        self.template = template
        self.on_trap = on_trap
        self.meter = meter
        self.settings = template.settings
        self.pooled = self.settings.mode == "pooled"
        # A plain lock, taken as is on every call's path; the condition on it only when a call must wait.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[ComponentInstance] = []
        self._busy = 0
        self._waiting = 0
        self._closed = False
        self.created = 0
        self.discarded = 0
        self.typical_call = 0.0  # seconds a call ran lately (a moving average), 0 before the first

    def warm(self) -> None:
        """Create the pooled instances now, so the first calls find them ready (and start failures show)."""
        if not self.pooled:
            return
        made = [self._create() for _ in range(self.settings.instances)]
        with self._lock:
            self._idle.extend(made)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "busy": self._busy,
                "idle": len(self._idle),
                "waiting": self._waiting,
                "created": self.created,
                "discarded": self.discarded,
            }

    def ready(self) -> bool:
        """Whether a call now would find an idle instance at once (read without the lock: a hint)."""
        return bool(self._idle) and self._busy < self.settings.instances and not self._closed

    def call(
        self,
        ref: FunctionRef,
        args: list[Any],
        deadline: float | None = None,
        lift: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run one call on a free instance; ``deadline`` is a ``time.monotonic()`` instant, ``lift``
        reads the result from wasmtime's C value (:meth:`ComponentInstance.call`)."""
        started = time.perf_counter()
        try:
            instance, ready = self._acquire(deadline)
        except PoolClosed:
            raise  # not a call into this component yet: the caller moves it to the pool that replaced this one
        except BaseException:
            self._record(started, None)
            raise
        succeeded = None  # when the guest code of a call that succeeded began
        try:
            timeout = self.settings.timeout_seconds
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise DeadlineExceeded(f"{self.template.label}: the caller's deadline passed before {ref} ran")
            ran = started if ready else time.perf_counter()  # after any wait for an instance
            result = instance.call(ref, args, timeout, lift)
            succeeded = ran
        except NeonGridError as err:
            if instance.poisoned and self.on_trap is not None:
                self.on_trap(err)
            raise
        finally:
            self._give_back(instance)
            self._record(started, succeeded)
        return result

    def _give_back(self, instance: ComponentInstance | None) -> None:
        """A call's place, and its instance (unless it trapped or the pool makes one per call)."""
        with self._lock:
            self._busy -= 1
            if instance is not None:
                if instance.poisoned or not self.pooled:
                    self.discarded += instance.poisoned
                elif not self._closed:
                    self._idle.append(instance)
            if self._waiting:
                self._cond.notify()

    def _record(self, started: float, ran: float | None) -> None:
        """A call that began at ``started`` ended; ``ran``: when its guest code began, if it succeeded."""
        now = time.perf_counter()
        if ran is not None:
            self.typical_call = moving_average(self.typical_call, now - ran)
        if self.meter is not None:
            self.meter.record(now - started, ran is not None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._idle.clear()
            self._cond.notify_all()

    def _create(self) -> ComponentInstance:
        instance = self.template.instantiate()
        self.created += 1
        return instance

    def _acquire(self, deadline: float | None) -> tuple[ComponentInstance, bool]:
        """A place among the running calls and an instance for it, waiting for one if need be; and
        whether it was there at once (no wait, nothing made), so that the guest code begins now."""
        with self._lock:
            if self._busy < self.settings.instances and not self._closed:  # the common case: no wait
                self._busy += 1
                instance = self._idle.pop() if self._idle else None
                ready = instance is not None
            else:
                instance, ready = self._wait_for_turn(deadline), False
        return (instance, ready) if instance is not None else (self._created(), False)

    def _created(self) -> ComponentInstance:
        """A new instance for a place already taken (given back if making it fails)."""
        try:
            return self._create()
        except BaseException:
            self._give_back(None)
            raise

    def _wait_for_turn(self, deadline: float | None) -> ComponentInstance | None:
        """Wait (the lock is held) until an instance is free; take its place and the idle one, if any."""
        label = self.template.label
        limit = self.settings.instances
        while True:
            if self._closed:
                raise PoolClosed(f"{label} is stopping", component=label)
            if self._busy < limit:
                break
            if self._waiting >= self.settings.max_queue:
                raise ResourceExhausted(
                    f"{label}: all {limit} instance(s) are busy and {self._waiting} call(s) are queued "
                    f"(maxQueue {self.settings.max_queue}); retry later or raise runtime.instances",
                    component=label,
                )
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"{label}: no instance became free before the deadline", component=label)
            self._waiting += 1
            try:
                self._cond.wait(remaining)
            finally:
                self._waiting -= 1
        self._busy += 1
        return self._idle.pop() if self._idle else None
