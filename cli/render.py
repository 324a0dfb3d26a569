"""What the CLI prints: tables and ``describe`` pages, from the control API's messages (no I/O)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from cli.front_doors import route_rows


def age(seconds: float) -> str:
    """kubectl's short ages: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def since(stamp: float, now: float | None = None) -> str:
    return age((now or time.time()) - stamp) if stamp else "-"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [list(header), *body]) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in [list(header), *body]
    )


def event_line(event: Any) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    scope = "/".join(x for x in (event.app, event.component) if x)
    where = f" @{event.node}" if event.node else ""
    return f"{stamp}  {event.kind:<18} {scope}{where}  {event.message}"


def ms(value: float) -> str:
    if value <= 0:
        return "-"
    return f"{value:.2f}ms" if value < 10 else f"{value:.0f}ms"


def rate(value: float) -> str:
    return f"{value:.1f}" if value else "0"


def size_rate(value: float) -> str:
    for unit, size in (("MB/s", 1e6), ("kB/s", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}B/s"


# ---------------------------------------------------------------- get --


def apps_table(apps: Sequence[Any], wide: bool = False) -> str:
    header = ["NAME", "GEN", "PHASE", "READY", "SINCE", "REASON"]
    if wide:
        header.insert(5, "PREFETCH")
    rows = []
    for a in apps:
        ready = " ".join(f"{c.name}:{c.ready_replicas}/{c.desired_replicas}" for c in a.components)
        row = [a.name, a.generation, a.phase, ready, since(a.since)]
        if wide:
            row.append(prefetch_progress(a) or "-")
        rows.append([*row, a.reason if wide else _short(a.reason)])
    return table(header, rows)


def prefetch_progress(app: Any) -> str:
    """A held rollout's progress in one line: ``gen 3: edge-1 1/2, cloud-1 2/2`` (empty when none waits)."""
    if not app.HasField("rollout"):
        return ""
    rollout = app.rollout
    nodes = ", ".join(f"{n.node} {n.ready}/{n.total}" + (" failed" if n.failed else "") for n in rollout.nodes)
    return f"gen {rollout.generation}: {nodes}"


def _rollout_section(app: Any) -> list[str]:
    """What a held rollout waits for, node by node (nothing when no rollout waits)."""
    if not app.HasField("rollout"):
        return []
    rollout = app.rollout
    left = max(0.0, rollout.deadline - time.time())
    lines = [f"Rollout:     generation {rollout.generation} prefetching (goes ahead within {left:.0f}s)"]
    for n in rollout.nodes:
        state = "ready" if n.ready == n.total else f"failed: {n.failed}" if n.failed else "fetching and compiling"
        lines.append(f"  {n.node}: {n.ready}/{n.total} artifacts ready  ({state})")
    return lines


def components_table(apps: Sequence[Any], wide: bool = False) -> str:
    header = ["APP", "COMPONENT", "PHASE", "READY", "NODES", "SINCE", "REASON"]
    if wide:
        header.insert(5, "ARTIFACT")
    rows = []
    for a in apps:
        for c in a.components:
            nodes = ",".join(f"{r.node}{'' if r.state == 'Running' else '(' + r.state + ')'}" for r in c.replicas)
            row = [a.name, c.name, c.phase, f"{c.ready_replicas}/{c.desired_replicas}", nodes or "-", since(c.since)]
            if wide:
                row.append(c.artifact[:19])
            row.append(c.reason if wide else _short(c.reason))
            rows.append(row)
    return table(header, rows)


def nodes_table(nodes: Sequence[Any], wide: bool = False) -> str:
    header = ["NAME", "STATE", "LABELS", "INSTANCES", "AGE"]
    if wide:
        header += ["DATAPLANE", "METRICS", "HTTP", "VERSION", "TAINTS"]
    rows = []
    for n in nodes:
        state = f"{n.state} ({age(time.time() - n.unreachable_since)})" if n.unreachable_since else n.state
        labels = ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))
        row = [n.name, state, labels or "-", n.instances, since(n.registered_at)]
        if wide:
            row += [
                n.dataplane_address,
                n.metrics_address or "-",
                n.http_url or "-",
                n.version,
                ",".join(n.taints) or "-",
            ]
        rows.append(row)
    return table(header, rows)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------- describe --


def describe_app(app: Any, wide: bool = False, events: Sequence[Any] = (), nodes: Sequence[Any] = ()) -> str:
    """A human view of one application: components, replicas, fusion, links, HTTP routes (with their URLs
    on ``nodes``' front doors), and its recent events."""
    lines = [
        f"Application: {app.name}  (generation {app.generation})",
        f"Phase:       {app.phase}" + (f" — {app.reason}" if app.reason else "") + f"  (since {since(app.since)})",
        *_rollout_section(app),
        "Components:",
    ]
    for comp in app.components:
        lines.append(
            f"  {comp.name}  {comp.phase}  {comp.ready_replicas}/{comp.desired_replicas} ready"
            + (f"  ({comp.reason})" if comp.reason else "")
        )
        if wide:
            lines.append(f"    artifact {comp.artifact}")
        for rep in comp.replicas:
            lines.append(
                f"    on {rep.node}: {rep.state}"
                + (f" — {rep.reason}" if rep.reason else "")
                + f"  ({since(rep.since)})"
            )
    if app.fusion:
        lines.append("Fusion:")
        for group in app.fusion:
            members = " + ".join(group.members)
            if group.artifact:
                also = f"; also alone: {', '.join(group.standalone)}" if group.standalone else ""
                lines.append(f"  {group.node}: {members} fused (root {group.root}{also})")
                if group.note:
                    lines.append(f"    {group.note}")
                if wide:
                    lines.append(f"    artifact {group.artifact}")
            else:
                lines.append(f"  {group.node}: {members} not fused: {group.reason}")
    if app.links:
        lines.append("Links:")
        for link in app.links:
            for route in link.routes:
                target = ", ".join(route.targets) or "nowhere"
                state = "" if route.state in ("", "Ready") else f"  {route.state}: {route.reason}"
                lines.append(
                    f"  {link.importer} --[{getattr(link, 'import')}]--> {link.exporter}: "
                    f"{route.mode} ({route.node} -> {target}){state}"
                )
    routes = route_rows([app], nodes)
    if routes:
        lines.append("Routes:")
        for row in routes:
            where = " ".join(row["urls"]) or ", ".join(row["nodes"]) or "not running"
            lines.append(f"  {row['route']} -> {row['component']}: {where}")
    lines += _events_section(events)
    return "\n".join(lines)


def describe_component(app: Any, name: str, metrics: Any = None, events: Sequence[Any] = (), wit: Any = None) -> str:
    comp = next(c for c in app.components if c.name == name)
    lines = [
        f"Component:   {app.name}/{comp.name}",
        f"Phase:       {comp.phase}" + (f" — {comp.reason}" if comp.reason else "") + f"  (since {since(comp.since)})",
        f"Artifact:    {comp.artifact}",
        f"Replicas:    {comp.ready_replicas}/{comp.desired_replicas} ready",
    ]
    by_node = {m.node: m for m in (metrics.components if metrics else ()) if m.component == name}
    for rep in comp.replicas:
        served_by = f" inside {rep.instance}" if rep.instance and rep.instance != name else ""
        lines.append(f"  on {rep.node}{served_by}: {rep.state}" + (f" — {rep.reason}" if rep.reason else ""))
        m = by_node.get(rep.node)
        if m is not None:
            lines.append(
                f"    {rate(m.calls_per_second)} calls/s, {rate(m.errors_per_second)} errors/s, p50 {ms(m.p50_ms)}, "
                f"p99 {ms(m.p99_ms)}; {m.calls} calls, {m.errors} errors, {m.traps} traps; "
                f"{m.instances} instance(s), {m.busy} busy"
            )
    imports = [link for link in app.links if link.importer == name]
    exports = [link for link in app.links if link.exporter == name]
    if imports or exports:
        lines.append("Links:")
    for link in imports:
        modes = ", ".join(
            f"{r.mode} from {r.node}" + ("" if r.state in ("", "Ready") else f" ({r.state})") for r in link.routes
        )
        lines.append(f"  imports {getattr(link, 'import')} from {link.exporter}: {modes or 'not placed'}")
    for link in exports:
        modes = ", ".join(f"{r.mode} from {r.node}" for r in link.routes)
        lines.append(f"  serves {getattr(link, 'import')} to {link.importer}: {modes or 'not placed'}")
    if wit is not None:
        lines += _wit_section(wit)
    lines += _events_section(events)
    return "\n".join(lines)


def _wit_section(wit: Any) -> list[str]:
    """A ComponentDescription: each interface's functions as WIT, and the types they use."""
    lines = []
    for title, interfaces in (("Exports", wit.exports), ("Imports", wit.imports)):
        if interfaces:
            lines.append(f"{title}:")
        for iface in interfaces:
            lines.append(f"  {iface.name or '(world)'}")
            lines += [f"    {function.wit}" for function in iface.functions]
            lines += [f"    {definition}" for definition in iface.types]
    for title, names in (("WASI imports", wit.wasi_imports), ("WASI exports", wit.wasi_exports)):
        if names:
            lines.append(f"{title}: {', '.join(names)}")
    return lines


def describe_node(node: Any, apps: Sequence[Any], events: Sequence[Any] = ()) -> str:
    lines = [
        f"Node:          {node.name}",
        f"State:         {node.state}"
        + (f" (for {age(time.time() - node.unreachable_since)})" if node.unreachable_since else ""),
        f"Labels:        {', '.join(f'{k}={v}' for k, v in sorted(node.labels.items())) or '-'}",
        f"Taints:        {', '.join(node.taints) or '-'}",
        f"Capabilities:  {', '.join(node.capabilities) or '-'}",
        f"Data plane:    {node.dataplane_address}",
        f"Metrics:       {node.metrics_address or '-'}",
        f"Version:       {node.version or '-'}   registered {since(node.registered_at)} ago",
        f"Capacity:      {node.instance_slots} instance slots, {node.memory_bytes // (1 << 20)} MiB",
        "Runs:",
    ]
    runs = [(a.name, c.name, r) for a in apps for c in a.components for r in c.replicas if r.node == node.name]
    if not runs:
        lines.append("  nothing")
    for app, comp, rep in runs:
        inside = f" (inside {rep.instance})" if rep.instance and rep.instance != comp else ""
        lines.append(f"  {app}/{comp}{inside}: {rep.state}" + (f" — {rep.reason}" if rep.reason else ""))
    lines += _events_section(events)
    return "\n".join(lines)


def _events_section(events: Sequence[Any]) -> list[str]:
    if not events:
        return []
    return ["Events:", *("  " + event_line(e) for e in events)]


# ---------------------------------------------------------------- top --


def top(metrics: Any, apps: Sequence[Any]) -> str:
    """Per component replica and per link: the agents' last window; fused links are listed, not measured."""
    comp_rows = [
        [
            m.app,
            m.component,
            m.node,
            rate(m.calls_per_second),
            rate(m.errors_per_second),
            ms(m.p50_ms),
            ms(m.p99_ms),
            m.instances,
            m.busy,
            m.queued,
        ]
        for m in sorted(metrics.components, key=lambda m: (m.app, m.component, m.node))
    ]
    link_rows = [
        [
            m.app,
            f"{m.importer} -> {m.exporter}",
            m.node,
            m.mode,
            rate(m.calls_per_second),
            rate(m.errors_per_second),
            ms(m.p50_ms),
            ms(m.p99_ms),
            size_rate(m.bytes_per_second) if m.mode == "remote" else "-",
        ]
        for m in sorted(metrics.links, key=lambda m: (m.app, m.importer, m.exporter, m.node))
    ]
    for app in apps:
        for link in app.links:
            for route in link.routes:
                if route.mode == "fused":
                    link_rows.append(
                        [app.name, f"{link.importer} -> {link.exporter}", route.node, "fused", "-", "-", "-", "-", "-"]
                    )
    out = table(
        ["APP", "COMPONENT", "NODE", "CALLS/S", "ERRORS/S", "P50", "P99", "INSTANCES", "BUSY", "QUEUED"], comp_rows
    )
    out += "\n\n" + table(["APP", "LINK", "NODE", "MODE", "CALLS/S", "ERRORS/S", "P50", "P99", "BYTES/S"], link_rows)
    if any(r[3] == "fused" for r in link_rows):
        out += "\n(fused links are calls inside one component: they never leave wasmtime and are not counted)"
    return out


# --------------------------------------------------------- explain --


def describe_explanation(comp: Any, limit: int = 10) -> str:
    """One component's placement: where, why not elsewhere, and the score of each candidate."""
    where = ", ".join(comp.nodes) or "nowhere"
    lines = [f"{comp.component} -> {where}  ({len(comp.nodes)}/{comp.desired_replicas} replicas)"]
    if comp.reason:
        lines.append(f"  why not more: {comp.reason}")
    passed = sorted((c for c in comp.candidates if not c.rejected_by), key=lambda c: (-c.total, c.node))
    if passed:
        scorers = sorted({s for c in passed for s in c.scores})
        rows = [
            [("* " if c.chosen else "  ") + c.node, f"{c.total:.2f}", *[f"{c.scores.get(s, 0.0):.2f}" for s in scorers]]
            for c in passed[:limit]
        ]
        lines += ["  " + line for line in table(["  NODE", "TOTAL", *scorers], rows).splitlines()]
        if len(passed) > limit:
            lines.append(f"  ... {len(passed) - limit} more eligible nodes")
    rejected: dict[tuple[str, str], int] = {}
    for c in comp.candidates:
        if c.rejected_by:
            rejected[(c.rejected_by, c.reason)] = rejected.get((c.rejected_by, c.reason), 0) + 1
    for (filt, reason), count in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  rejected {count} node(s) by {filt}: {reason}")
    return "\n".join(lines)


def progress(app: Any) -> list[str]:
    """``apply --wait``: one line per component, then the application's."""
    out = []
    for c in app.components:
        line = f"  {c.name:<16} {c.phase:<13} {c.ready_replicas}/{c.desired_replicas}"
        waiting = next((r for r in c.replicas if r.state != "Running"), None)
        if c.reason:
            line += f"  {c.reason}"
        elif waiting is not None:
            line += f"  {waiting.node}: {waiting.state}" + (f" ({waiting.reason})" if waiting.reason else "")
        out.append(line)
    return out
