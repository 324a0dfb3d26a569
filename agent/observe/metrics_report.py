"""An agent's ``MetricsReport`` for the control plane, made from its telemetry's last window."""

from __future__ import annotations

from typing import Any

from agent.observe.telemetry import Telemetry
from neon._proto import control_pb2


def metrics_report(
    node: str, rtt_ms: dict[str, float], telemetry: Telemetry, traps: dict[tuple[str, str], Any]
) -> control_pb2.MetricsReport:
    """An agent's MetricsReport: peer round trips, and per component and link its last window
    (from the agent's ``telemetry``)."""
    elapsed, components, links = telemetry.window()
    pools = telemetry.pools()
    per_link: dict[tuple[str, str, str], tuple[float, int]] = {}
    for (app, importer, exporter, _), rates in links.items():
        rate, total = per_link.get((app, importer, exporter), (0.0, 0))
        per_link[(app, importer, exporter)] = (rate + rates.calls_per_second, total + rates.calls)
    out_components = []
    for key in sorted(set(components) | set(pools)):
        app, comp = key
        window = components.get(key)
        pool = pools.get(key)
        trap = traps.get(key)
        msg = control_pb2.ComponentMetrics(
            app=app,
            component=comp,
            node=node,
            traps=trap.count if trap is not None else 0,
            instances=(pool.busy + pool.idle) if pool else 0,
            busy=pool.busy if pool else 0,
            queued=pool.waiting if pool else 0,
            window_seconds=elapsed,
        )
        if window is not None:
            _fill_rates(msg, window)
        out_components.append(msg)
    out_links = []
    for (app, importer, exporter, mode), rates in sorted(links.items()):
        link = control_pb2.LinkMetrics(
            app=app,
            importer=importer,
            exporter=exporter,
            node=node,
            mode=mode,
            bytes_sent=rates.bytes_sent,
            bytes_received=rates.bytes_received,
            bytes_per_second=rates.bytes_per_second,
            window_seconds=elapsed,
        )
        _fill_rates(link, rates)
        out_links.append(link)
    return control_pb2.MetricsReport(
        node=node,
        rtt_ms=rtt_ms,
        links=[
            control_pb2.LinkRate(app=a, importer=i, exporter=e, calls_per_second=rate, calls_total=total)
            for (a, i, e), (rate, total) in sorted(per_link.items())
        ],
        components=out_components,
        link_metrics=out_links,
    )


def _fill_rates(msg: Any, rates: Any) -> None:
    msg.calls = rates.calls
    msg.errors = rates.errors
    msg.calls_per_second = rates.calls_per_second
    msg.errors_per_second = rates.errors_per_second
    msg.p50_ms = rates.p50_ms
    msg.p99_ms = rates.p99_ms
    msg.latency_buckets.extend(rates.latency.counts)
    msg.latency_sum = rates.latency.sum
