"""One HTTP component on this node: its instances (a fresh one per request, or kept for reuse), how many
requests it takes at once, and what a request's outcome was. Runs in the front door's worker threads, or, for a
quick component, on the front door's own thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agent.http.host import HttpHost
from agent.http.messages import IncomingRequest, Responder
from agent.runtime.engine import ComponentInstance, ComponentTemplate
from neon.errors import CapabilityDenied, ComponentError, DeadlineExceeded, NeonGridError
from neon.http_spec import HttpSpec
from neon.observe import log
from neon.observe.metrics import Meter, moving_average

_log = log.get("neon.agent.http")

MAX_IDLE = 8  # instances a reusing component keeps between requests
MAX_LIVE_HANDLES = 1000  # a reused instance holding more (guests leak request handles) is retired
# A component whose requests lately took less than this (a moving average, after WARMUP requests on worker
# threads) runs a request with its whole body in hand on the front door's own thread: no hop to a worker and
# back. Measured with the Python hello guest (bench/front_door.py, 8 clients): 474 requests/s on workers, 1,304
# inline; one client 1.68 ms -> 1.20 ms. Only a component that cannot wait on the network qualifies (no
# imports but WASI's, no allowed outbound hosts); one whose request ever took INLINE_STALL is never inlined again.
INLINE_BUDGET = 0.005
INLINE_STALL = 0.05
WARMUP = 8


@dataclass
class Outcome:
    """How a request ended inside the guest (the front door turns it into a status when nothing was sent)."""

    answered: bool  # the guest set its response
    error: NeonGridError | None = None
    incident: str = ""  # the trap's incident id (in the agent's log and the Trapped event)


class HttpComponent:
    """What the front door needs of one component: run a request on an instance, within its limits."""

    def __init__(
        self,
        app: str,
        name: str,
        template: ComponentTemplate,
        host: HttpHost,
        spec: HttpSpec,
        on_trap: Callable[[NeonGridError], str],
        meter: Meter | None = None,
    ) -> None:
        self.meter = meter  # the component's calls (neon top, the dashboard): a request is one call
        self.app = app
        self.name = name
        self.template = template
        self.host = host
        self.spec = spec
        self.on_trap = on_trap
        self._slots = threading.BoundedSemaphore(spec.max_concurrent)
        self._idle: list[ComponentInstance] = []
        self._lock = threading.Lock()
        self.instantiated = 0
        self.first_requests = 0  # requests served on an instance no request had run on
        self.served = 0
        self.typical = 0.0  # seconds a request took lately (a moving average)
        self.may_inline = not host.outbound.patterns and not template.runtime.imports(template.component)
        self.retired = 0
        self.closed = False

    @property
    def label(self) -> str:
        return f"{self.app}/{self.name}"

    def too_large(self, length: int | None) -> str | None:
        """Why a body of ``length`` bytes is refused (413), or None."""
        if length is not None and length > self.spec.max_body_bytes:
            return f"the body is {length} bytes; {self.label} takes at most {self.spec.max_body_bytes}"
        return None

    def busy(self, node: str) -> str:
        """What a request it has no slot for is told (503)."""
        return f"{self.label} is serving {self.spec.max_concurrent} requests on {node}; retry"

    def admit(self) -> bool:
        """Take a request slot now, or say no (the caller answers 503)."""
        return self._slots.acquire(blocking=False)

    def release(self) -> None:
        self._slots.release()

    def warm(self) -> None:
        """Make one instance ahead (reuse mode keeps it; a fresh-instance component checks it starts)."""
        instance = self._instantiate()
        if self.spec.instances == "reuse":
            self._give_back(instance)

    def run(self, request: IncomingRequest, responder: Responder, inline: bool = False) -> Outcome:
        """Serve one request (the caller holds a slot; ``inline``: on the front door's thread). A trap discards
        the instance and is reported."""
        started = time.perf_counter()
        try:
            instance = self._take()
        except ComponentError as err:  # no instance could be made (a full pool, a failing start): 503
            return Outcome(answered=False, error=err)
        self.first_requests += instance.calls == 0
        try:
            outparam = self.host.serve(instance, request, responder, self.spec.request_timeout)
        except NeonGridError as err:
            instance.poisoned = True
            incident = "" if isinstance(err, CapabilityDenied) else self.on_trap(err)
            self._record(started, False, inline)
            return Outcome(answered=False, error=err, incident=incident)
        finally:
            self._give_back(instance)
        self._record(started, outparam.set, inline)
        return Outcome(answered=outparam.set)

    def quick(self) -> bool:
        """Whether a request may run on the front door's thread (see :data:`INLINE_BUDGET`)."""
        return self.may_inline and self.served >= WARMUP and self.typical < INLINE_BUDGET

    def _record(self, started: float, ok: bool, inline: bool) -> None:
        took = time.perf_counter() - started
        self.served += 1
        self.typical = moving_average(self.typical, took)
        if inline and took > INLINE_STALL and self.may_inline:
            self.may_inline = False
            _log.info("requests run on worker threads from now on", component=self.label, took=round(took, 3))
        if self.meter is not None:
            self.meter.record(took, ok)

    def _take(self) -> ComponentInstance:
        if self.spec.instances == "reuse":
            with self._lock:
                if self._idle:
                    return self._idle.pop()
        return self._instantiate()

    def _instantiate(self) -> ComponentInstance:
        instance = self.template.instantiate()
        self.instantiated += 1
        return instance

    def _give_back(self, instance: ComponentInstance) -> None:
        if self.spec.instances != "reuse" or instance.poisoned or self.closed:
            return
        if instance.scope is not None and _table_of(instance).live > MAX_LIVE_HANDLES:
            self.retired += 1
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(instance)

    def live_handles(self) -> list[int]:
        """Host-resource handles each kept instance still holds (a leak shows here)."""
        with self._lock:
            return [_table_of(i).live for i in self._idle if i.scope is not None]

    def close(self) -> None:
        self.closed = True
        with self._lock:
            self._idle.clear()


def status_for(outcome: Outcome) -> tuple[int, str]:
    """The status and text when the guest sent nothing itself."""
    if isinstance(outcome.error, ComponentError):  # no instance could be made for the request
        return 503, f"the component could not start an instance: {outcome.error.message}"
    if isinstance(outcome.error, DeadlineExceeded):
        return 504, f"the component did not answer in time: {outcome.error.message}"
    if isinstance(outcome.error, CapabilityDenied):
        return 500, f"the component was stopped: {outcome.error.message}"
    if outcome.error is not None:
        return 500, f"the component failed (incident {outcome.incident}); see the agent's log"
    return 500, "the component returned without setting a response"


def _table_of(instance: ComponentInstance) -> Any:
    state: Any = instance.scope
    return state.table
