"""A component's imports linked to host functions: a call into a component on this node, a typed gRPC
forwarder to another node, or (for an interface ``grants.interfaces`` leaves out) a stub that denies."""

from __future__ import annotations

import time
from typing import Any

from agent.dataplane.forwarder import Router
from agent.dataplane.serving import Serving
from agent.observe.telemetry import Telemetry
from agent.runtime.denials import DenialLog
from agent.runtime.engine import FunctionRef, Runtime
from agent.runtime.traps import HostFunc
from agent.values.signature import Signature as CallSignature
from neon.errors import ComponentError
from neon.model import ComponentAssignment


class Linker:
    """Links imports on one node, through its runtime, its routes to other nodes and what it serves."""

    def __init__(self, runtime: Runtime, router: Router, serving: Serving, telemetry: Telemetry) -> None:
        self.runtime = runtime
        self.router = router
        self.serving = serving
        self.telemetry = telemetry

    def link(
        self,
        app: str,
        name: str,
        spec: ComponentAssignment,
        component: Any,
        denials: DenialLog,
        runtime: Runtime | None = None,
    ) -> dict[str, dict[str, HostFunc]]:
        """Host functions for every non-WASI import: local calls, gRPC forwarders, or (for an
        interface ``grants.interfaces`` leaves out) stubs that deny. ``runtime``: the one that compiled
        ``component``, if not the node's first."""
        needed = (runtime or self.runtime).imports(component)
        bindings = {b.import_name: b for b in spec.imports}
        for import_name in bindings:
            if import_name not in needed:
                have = ", ".join(sorted(needed)) or "none besides WASI"
                raise ComponentError(
                    f"{app}/{name} is linked on {import_name}, which it does not import (its imports: {have})",
                    component=name,
                    import_name=import_name,
                )
        linked: dict[str, dict[str, HostFunc]] = {}
        for iface, funcs in sorted(needed.items()):
            binding = bindings.get(iface)
            if binding is None and not funcs:
                linked[iface] = {}  # an interface of types only: an empty instance satisfies it
                continue
            granted = spec.grants.interfaces
            if binding is None and granted is not None and iface not in granted:
                what = f"{iface or 'its root imports'} (not in grants.interfaces)"
                linked[iface] = {fname: denials.stub(what) for fname in funcs}
                continue
            if binding is None:
                raise ComponentError(
                    f"{app}/{name} imports {iface or 'root functions'}, but no link satisfies it; add to spec.links: "
                    f"{{importer: {name}, import: {iface}, exporter: <component>}}",
                    component=name,
                    import_name=iface,
                )
            table: dict[str, HostFunc] = {}
            for fname, fty in funcs.items():
                # Compiled for local links too: it refuses types wasmtime-py cannot pass faithfully.
                sig = CallSignature.of(fty, f"{iface}#{fname}")
                if binding.local:
                    table[fname] = self._local_call(app, name, binding.component, FunctionRef(iface, fname))
                else:
                    table[fname] = self.router.forwarder(
                        app, binding.importer or name, binding.component, iface, fname, sig, binding.retries(fname)
                    )
            linked[iface] = table
        return linked

    def _local_call(self, app: str, importer: str, exporter: str, ref: FunctionRef) -> HostFunc:
        meter = self.telemetry.link_meter((app, importer, exporter, "local"))

        def call(*args: Any) -> Any:
            started = time.perf_counter()
            ok = False
            try:
                result = self.serving.call(app, exporter, ref, list(args))
                ok = True
                return result
            finally:
                meter.record(time.perf_counter() - started, ok)

        return call
