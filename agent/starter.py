"""What starting a component on this node makes: its artifact checked and compiled (or loaded compiled), its
imports linked, its instance pool warmed, and, for an HTTP component, its place at the front door. Runs in a
worker thread; the shell installs what it returns.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from agent.control.artifact_cache import ArtifactCache
from agent.http.component import HttpComponent
from agent.http.wiring import http_component, http_host
from agent.linking import Linker
from agent.observe.telemetry import Telemetry
from agent.platform.config_store import ConfigMisses, config_imports
from agent.platform.kv_buckets import Buckets
from agent.platform.kv_host import KeyValueHost, uses_keyvalue
from agent.runtime.denials import DenialLog, Incidents
from agent.runtime.engine import ComponentTemplate, Runtime
from agent.runtime.glue import combined
from agent.runtime.pool import InstancePool
from neon.errors import CapabilityDenied, NeonGridError
from neon.model import ComponentAssignment
from neon.observe import log

_log = log.get("neon.agent")

Key = tuple[str, str]
T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread of its own that does not hold the process up at exit (asyncio's worker
    threads do): for background work a stopping agent abandons, such as compiling optimized code."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        def apply() -> None:
            if not done.done():  # the awaiting task may have been cancelled
                setter(value)

        try:
            loop.call_soon_threadsafe(apply)
        except RuntimeError:
            pass  # the loop closed while this ran: nobody waits for it

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
            deliver(done.set_exception, err)
        else:
            deliver(done.set_result, result)

    threading.Thread(target=work, name=f"background-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await done


@dataclass(frozen=True)
class Hooks:
    """Where one component's denials, output, traps and config misses go (the same for every build of it)."""

    denials: DenialLog
    sink: Callable[[str, str], None]
    on_trap: Callable[[NeonGridError], None]
    on_http_trap: Callable[[NeonGridError], str]
    misses: ConfigMisses

    @classmethod
    def of(
        cls,
        key: Key,
        denials: DenialLog,
        sink: Callable[[str, str], None],
        traps: Incidents,
        telemetry: Telemetry,
        misses: ConfigMisses,
    ) -> Hooks:
        """A trap is counted, kept as an incident (a denial is reported as one instead) and told to the log."""
        app, name = key

        def kept(err: NeonGridError, what: str) -> str:
            telemetry.trap(app, name)
            incident = traps.add(err.message)
            _log.warning(what, app=app, component=name, incident=incident, error=err.message)
            sink("agent", f"trapped (incident {incident}): {err.message}")
            return incident

        def on_trap(err: NeonGridError) -> None:
            if isinstance(err, CapabilityDenied):
                telemetry.trap(app, name)
                sink("agent", err.message)
                return  # reported as a denial
            kept(err, "guest trapped")

        return cls(denials, sink, on_trap, lambda err: kept(err, "guest trapped serving HTTP"), misses)


class Starter:
    """Builds components' instances from their assignments."""

    def __init__(
        self,
        artifacts: ArtifactCache,
        linker: Linker,
        telemetry: Telemetry,
        volumes: Path,
        check_provenance: Callable[[str, ComponentAssignment], None],
        buckets: Buckets,
    ) -> None:
        self.buckets = buckets
        self.artifacts = artifacts
        self.linker = linker
        self.telemetry = telemetry
        self.volumes = volumes
        self.check_provenance = check_provenance

    def prepare(self, runtime: Runtime, spec: ComponentAssignment) -> None:
        """Compile ``spec``'s artifact ahead of its start (checked first, as a start checks it): the compiled
        code is then in the cache the start reads."""
        self.check_provenance(f"prefetch {spec.name}", spec)
        runtime.load(spec.artifact, self.artifacts.path(spec.artifact))

    def build(
        self, runtime: Runtime, key: Key, spec: ComponentAssignment, hooks: Hooks, config: Mapping[str, str]
    ) -> tuple[InstancePool, HttpComponent | None]:
        """The component's pool (warm) and its front-door place (None without routes), compiled by ``runtime``;
        ``config``: what its wasi:config/store gives (secrets' values resolved)."""
        app, name = key
        label = f"{app}/{name}"
        self.check_provenance(label, spec)  # before anything is compiled
        component = runtime.load(spec.artifact, self.artifacts.path(spec.artifact))
        imports = self.linker.link(app, name, spec, component, hooks.denials, runtime)
        names = runtime.import_names(component)
        imports |= config_imports(names, config, hooks.misses)
        http = http_host(runtime, component, label, spec, hooks.denials, hooks.sink)
        kv = None
        if uses_keyvalue(names):
            openers = {b.name: self.buckets.opener(app, name, b) for b in spec.buckets}
            native = self.buckets.native() if any(b.backend == "node" for b in spec.buckets) else None
            kv = KeyValueHost(runtime.engine, component, label, openers, native)
        host = combined(http, kv)
        template = ComponentTemplate(
            runtime,
            component,
            label,
            imports,
            settings=spec.runtime,
            grants=spec.grants,
            volume_root=self.volumes / app,
            denials=hooks.denials,
            output=hooks.sink,
            host=host,
        )
        meter = self.telemetry.component_meter(app, name)
        pool = InstancePool(template, hooks.on_trap, meter)
        pool.warm()
        served = http_component(app, name, template, http, spec, hooks.on_http_trap, meter)
        return pool, served
