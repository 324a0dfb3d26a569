"""What an agent counts about the calls it serves and makes, for Prometheus and ``neon top``.

Per component (calls into it on this node, whoever made them): calls by
outcome, latency, traps. Per link (calls its importer makes here): calls by
outcome and latency, and for links that cross nodes the bytes each way.
Calls inside a fused component never leave wasmtime and are not seen; only
calls into its root are. Instance counts are read from the pools at each scrape.

:meth:`Telemetry.window` turns the running totals into what happened since the
previous window: rates and latency quantiles, which the agent reports to the
control plane.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from neon.observe.metrics import Counter, Family, Gauge, HistogramValue, Meter, Registry, quantile

ComponentKey = tuple[str, str]  # (app, component)
LinkKey = tuple[str, str, str, str]  # (app, importer, exporter, mode: local | remote)


@dataclass(frozen=True)
class PoolStats:
    busy: int
    idle: int
    waiting: int
    created: int
    discarded: int


@dataclass(frozen=True)
class Rates:
    """One component's or link's calls over a window."""

    calls: int  # running total
    errors: int
    calls_per_second: float
    errors_per_second: float
    p50_ms: float
    p99_ms: float
    latency: HistogramValue  # running total
    bytes_sent: int = 0
    bytes_received: int = 0
    bytes_per_second: float = 0.0


class Telemetry:
    """The agent's metrics registry and the hooks the call paths use."""

    def __init__(self, node: str, version: str = "") -> None:
        self.node = node
        r = self.registry = Registry()
        self.component_calls = r.counter(
            "neon_component_calls_total",
            "Calls into a component on this node, by outcome",
            ("app", "component", "outcome"),
        )
        self.component_seconds = r.histogram(
            "neon_component_call_seconds", "Time a call into a component took on this node", ("app", "component")
        )
        self.traps = r.counter(
            "neon_component_traps_total", "Calls that trapped (the instance was discarded)", ("app", "component")
        )
        self.link_calls = r.counter(
            "neon_link_calls_total",
            "Calls over a link made by its importer on this node, by mode (local, remote) and outcome",
            ("app", "importer", "exporter", "mode", "outcome"),
        )
        self.link_seconds = r.histogram(
            "neon_link_call_seconds",
            "Time a call over a link took, seen by the importer",
            ("app", "importer", "exporter", "mode"),
        )
        self.link_bytes = r.counter(
            "neon_link_bytes_total",
            "Bytes of forwarded calls across nodes (sent: arguments, received: results)",
            ("app", "importer", "exporter", "direction"),
        )
        self.batches = r.counter(
            "neon_forwarded_batches_total",
            "Batches of forwarded calls sent to a peer agent (calls coalesced while others to it were in flight)",
            ("peer",),
        )
        self.batched_calls = r.counter(
            "neon_forwarded_batched_calls_total", "Forwarded calls that were sent in a batch", ("peer",)
        )
        self.peer_rtt = r.gauge("neon_peer_rtt_seconds", "Round trip to a peer agent's data plane", ("peer",))
        info = r.gauge("neon_agent_info", "This agent", ("node", "version"))
        info.set(node, version, value=1)
        self._pools: Callable[[], dict[ComponentKey, PoolStats]] = dict
        self._denials: Callable[[], dict[ComponentKey, int]] = dict
        self._served: Callable[[], dict[tuple[str, str], int]] = dict
        r.collect(self._collect)
        self._meters: dict[tuple[str, ...], Meter] = {}
        self._meters_lock = threading.Lock()
        self._window_lock = threading.Lock()
        self._last_time = time.monotonic()
        self._last_components: dict[ComponentKey, tuple[int, int, HistogramValue]] = {}
        self._last_links: dict[LinkKey, tuple[int, int, HistogramValue, int, int]] = {}

    def watch(
        self, pools: Callable[[], dict[ComponentKey, PoolStats]], denials: Callable[[], dict[ComponentKey, int]]
    ) -> None:
        """Where instance counts and denials are read at each scrape."""
        self._pools, self._denials = pools, denials

    def watch_served(self, served: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Where the data plane's count of forwarded calls by (method, thread) is read at each scrape."""
        self._served = served

    # ------------------------------------------------------------ hooks --

    def component_meter(self, app: str, component: str) -> Meter:
        """The meter of calls into ``app/component`` on this node."""
        return self._meter(
            (app, component),
            lambda: Meter(self.component_calls, (app, component), self.component_seconds, (app, component)),
        )

    def link_meter(self, key: LinkKey) -> Meter:
        """The meter of calls over a link made here; a remote link's counts bytes too."""
        app, importer, exporter, mode = key
        moved = None
        if mode == "remote":
            moved = (self.link_bytes, (app, importer, exporter, "sent"), (app, importer, exporter, "received"))
        return self._meter(key, lambda: Meter(self.link_calls, key, self.link_seconds, key, moved))

    def _meter(self, key: tuple[str, ...], make: Callable[[], Meter]) -> Meter:
        """One meter per component or link."""
        with self._meters_lock:
            meter = self._meters.get(key)
            if meter is None:
                meter = self._meters[key] = make()
            return meter

    def batch(self, peer: str, calls: int) -> None:
        """A batch of ``calls`` forwarded calls went to ``peer`` (a data-plane address) and came back."""
        self.batches.inc(peer)
        self.batched_calls.inc(peer, amount=calls)

    def trap(self, app: str, component: str) -> None:
        self.traps.inc(app, component)

    # ------------------------------------------------------------- reads --

    def pools(self) -> dict[ComponentKey, PoolStats]:
        return self._pools()

    def _collect(self) -> Iterable[Family]:
        instances = Gauge(
            "neon_component_instances", "Instances of a component on this node", ("app", "component", "state")
        )
        queued = Gauge("neon_component_queued_calls", "Calls waiting for a free instance", ("app", "component"))
        created = Gauge(
            "neon_component_instances_created",
            "Instances created since the component started here",
            ("app", "component"),
        )
        discarded = Gauge(
            "neon_component_instances_discarded", "Instances thrown away after a trap", ("app", "component")
        )
        denials = Gauge(
            "neon_capability_denials", "Calls to capabilities the component was not granted", ("app", "component")
        )
        for (app, comp), stats in sorted(self._pools().items()):
            instances.set(app, comp, "busy", value=stats.busy)
            instances.set(app, comp, "idle", value=stats.idle)
            queued.set(app, comp, value=stats.waiting)
            created.set(app, comp, value=stats.created)
            discarded.set(app, comp, value=stats.discarded)
        for (app, comp), count in sorted(self._denials().items()):
            denials.set(app, comp, value=count)
        served = Counter(
            "neon_dataplane_served_total",
            "Forwarded calls this node's data plane answered, by method and by the thread that ran them: "
            "poller (quick calls, run where they arrived) or worker",
            ("method", "thread"),
        )
        for (method, thread), count in sorted(self._served().items()):
            served.set(method, thread, value=count)
        return [instances, queued, created, discarded, denials, served]

    def window(self) -> tuple[float, dict[ComponentKey, Rates], dict[LinkKey, Rates]]:
        """Seconds since the previous window, and per component and link what happened in it."""
        with self._window_lock:
            now = time.monotonic()
            elapsed = max(now - self._last_time, 1e-6)
            self._last_time = now
            comp_counts = _by_outcome(self.component_calls.items())
            components = {
                (app, comp): (*comp_counts.get((app, comp), (0, 0)), latency)
                for (app, comp), latency in self.component_seconds.items()
            }
            link_counts = _by_outcome(self.link_calls.items())
            # (app, importer, exporter, direction) -> bytes
            moved = {key: int(value) for key, value in self.link_bytes.items()}
            links: dict[LinkKey, tuple[int, int, HistogramValue, int, int]] = {}
            for (app, imp, exp, mode), latency in self.link_seconds.items():
                key = (app, imp, exp, mode)
                remote = mode == "remote"
                sent = moved.get((app, imp, exp, "sent"), 0) if remote else 0
                received = moved.get((app, imp, exp, "received"), 0) if remote else 0
                links[key] = (*link_counts.get(key, (0, 0)), latency, sent, received)
            out_c = {
                key: _rates(calls, errors, latency, self._last_components.get(key), elapsed)
                for key, (calls, errors, latency) in components.items()
            }
            out_l = {}
            for key, (calls, errors, latency, sent, received) in links.items():
                before = self._last_links.get(key)
                rates = _rates(calls, errors, latency, before[:3] if before else None, elapsed)
                moved_before = before[3] + before[4] if before else 0
                out_l[key] = dataclasses.replace(
                    rates,
                    bytes_sent=sent,
                    bytes_received=received,
                    bytes_per_second=(sent + received - moved_before) / elapsed,
                )
            self._last_components, self._last_links = components, links
            return elapsed, out_c, out_l


def _by_outcome(items: Iterable[tuple[tuple[str, ...], float]]) -> dict[tuple[str, ...], tuple[int, int]]:
    """Counter samples labelled ``(..., outcome)`` -> per key without the outcome: (calls, errors)."""
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    for (*key, outcome), value in items:
        calls, errors = out.get(tuple(key), (0, 0))
        out[tuple(key)] = (calls + int(value), errors + (int(value) if outcome == "error" else 0))
    return out


def _rates(
    calls: int, errors: int, latency: HistogramValue, before: tuple[int, int, HistogramValue] | None, elapsed: float
) -> Rates:
    prev_calls, prev_errors, prev_latency = before if before else (0, 0, None)
    recent = latency.minus(prev_latency)
    p50, p99 = quantile(0.5, recent), quantile(0.99, recent)
    return Rates(
        calls=calls,
        errors=errors,
        calls_per_second=(calls - prev_calls) / elapsed,
        errors_per_second=(errors - prev_errors) / elapsed,
        p50_ms=(p50 or 0.0) * 1000.0,
        p99_ms=(p99 or 0.0) * 1000.0,
        latency=latency,
    )
