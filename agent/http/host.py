"""The wasi:http host of one component: which interfaces the agent must define for it, and one request
served on an instance.

wasmtime-py offers only the client side of wasi:http, with resource types defined in Rust that Python
cannot create, so the agent defines wasi:http itself. A ``use``d resource type must be the same in every
interface that names it, so the agent also defines every interface that shares a resource type with
the ones it implements (wasi:io, cli stdio, the monotonic clock, and for componentize-py guests the
filesystem and socket interfaces that hand out streams and pollables). The closure is computed from the
component's own import types (resource-type equality); wasmtime keeps the rest.
"""

from __future__ import annotations

import functools
from typing import Any

import wasmtime
from wasmtime import component as wc

from agent.http.implementations import HostContext, implementations
from agent.http.messages import IncomingRequest, Responder, ResponseOutparam
from agent.http.outbound import Outbound
from agent.runtime.denials import WASI_GATES, DenialLog
from agent.runtime.engine import FunctionRef
from agent.runtime.glue import HostTrap, Impl, Table, define_instances, imported_instances, resource_groups, using
from neon.errors import ComponentError
from neon.http_spec import HANDLER

ROOTS = ("wasi:io/", "wasi:http/")


def handler_export(engine: wasmtime.Engine, component: wc.Component) -> FunctionRef | None:
    """The component's ``wasi:http/incoming-handler@0.2.x#handle``, if it exports one."""
    for name in component.type.exports(engine):
        if name.startswith(HANDLER):
            return FunctionRef(name, "handle")
    return None


def uses_http(import_names: list[str]) -> bool:
    """Whether a component needs the agent's wasi:http (it imports a wasi:http interface)."""
    return any(name.startswith("wasi:http/") for name in import_names)


class HttpHost:
    """The interfaces the agent defines for one HTTP component (a :class:`agent.runtime.engine.WasiHost`)."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component, label: str, outbound: Outbound) -> None:
        self.label = label
        self.outbound = outbound
        self.handler = handler_export(engine, component)  # None: it only makes outbound requests
        self._items = imported_instances(engine, component)
        self._groups = resource_groups(self._items)
        self.interfaces = frozenset(self._closure())
        self.output_sink: Any = None  # (stream, bytes) -> None: the component's stdout and stderr

    def _closure(self) -> set[str]:
        python = {i for i in self._items if i.startswith(ROOTS)}
        while True:
            shared = {g for (i, _), g in self._groups.items() if i in python}
            more = {i for (i, _), g in self._groups.items() if g in shared} - python
            if not more:
                return python
            python |= more

    def define(self, root: wc.LinkerInstance, denials: DenialLog) -> None:
        type_ids = {(_base(i), r): g for (i, r), g in self._groups.items()}
        impls = implementations(HostContext(type_ids, self._output, self.outbound))

        def impl_for(iface: str, item: str) -> Impl:
            impl = impls.get((_base(iface), item))
            if impl is not None:
                return impl
            gate = WASI_GATES.get(_base(iface))
            if gate is not None and item in gate[1]:
                return denials.stub(gate[0])
            return _absent(f"{iface}#{item}")

        define_instances(root, self.interfaces, self._items, self._groups, impl_for)

    def _output(self, stream: str, data: bytes) -> None:
        if self.output_sink is not None:
            self.output_sink(stream, data)

    def scope(self) -> using:
        """One instance's table of host objects, entered around every call into the instance."""
        return using(Table())

    def serve(self, instance: Any, request: IncomingRequest, responder: Responder, timeout: float) -> ResponseOutparam:
        """Call the handler with the request; returns the outparam (``set`` says whether it answered).
        Raises what the call raised (a trap poisons the instance)."""
        if self.handler is None:
            raise ComponentError(
                f"{self.label} does not export {HANDLER}.x; it cannot serve HTTP", component=self.label
            )
        state: using = instance.scope
        outparam = ResponseOutparam(responder)
        request_type, outparam_type = self._handler_types
        with state as table:
            handles = [table.own(request_type, request), table.own(outparam_type, outparam)]
        instance.call(self.handler, handles, timeout=timeout)
        return outparam

    @functools.cached_property
    def _handler_types(self) -> tuple[int, int]:
        """The host type ids of the handler's arguments, looked up once (not on every request)."""
        return self._type_id("incoming-request"), self._type_id("response-outparam")

    def _type_id(self, resource: str) -> int:
        for (iface, item), group in self._groups.items():
            if item == resource and _base(iface) == "wasi:http/types":
                return group
        raise ComponentError(f"{self.label} imports no wasi:http/types {resource}", component=self.label)


def _base(name: str) -> str:
    return name.split("@", 1)[0]


def _absent(name: str) -> Impl:
    def trap(*_args: Any) -> Any:
        raise HostTrap(f"{name} is not available to HTTP components on this agent")

    return trap
