"""The functions the agent implements for an HTTP component, by (interface without version, function):
wasi:http/types and outgoing-handler, and what shares their resource types (wasi:io's error, poll and
streams, cli stdio, the monotonic clock). wasmtime keeps the rest (random, wall clock, environment,
exit, terminals). Filesystem and socket functions that come into the closure only through the stream
and pollable types are absent: no directory is preopened, and opening a socket traps and is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.http import messages as m
from agent.http.outbound import Outbound, OutgoingRequest, RequestOptions
from agent.http.streams import InputStream, OutputStream, Pollable, ok, poll
from agent.runtime.glue import Impl, current

IO_ERROR, POLL, STREAMS = "wasi:io/error", "wasi:io/poll", "wasi:io/streams"
CLOCK, TYPES, OUTGOING = "wasi:clocks/monotonic-clock", "wasi:http/types", "wasi:http/outgoing-handler"


@dataclass
class HostContext:
    """What the implementations of one component need: resource type ids, its output, its outbound."""

    type_ids: dict[tuple[str, str], int]  # (interface without version, resource) -> host type id
    output: Callable[[str, bytes], None]  # (stdout|stderr, bytes)
    outbound: Outbound

    def new(self, iface: str, resource: str, obj: Any) -> Any:
        return current().keep(self.type_ids[(iface, resource)], obj)


def implementations(ctx: HostContext) -> dict[tuple[str, str], Impl]:
    impl: dict[tuple[str, str], Impl] = {}

    def define(iface: str, name: str) -> Callable[[Impl], Impl]:
        def register(fn: Impl) -> Impl:
            impl[(iface, name)] = fn
            return fn

        return register

    def pollable(p: Pollable) -> Any:
        return ctx.new(POLL, "pollable", p)

    def resource(kind: str) -> Callable[[Any], Any]:
        iface = STREAMS if kind.endswith("-stream") else TYPES
        return lambda obj: ctx.new(iface, kind, obj)

    # ---- wasi:io
    define(IO_ERROR, "[method]error.to-debug-string")(lambda e: str(e))
    define(POLL, "[method]pollable.ready")(lambda p: p.ready())
    define(POLL, "[method]pollable.block")(lambda p: p.block())
    define(POLL, "poll")(poll)
    s = STREAMS
    define(s, "[method]input-stream.read")(lambda st, n: st.read(n, False))
    define(s, "[method]input-stream.blocking-read")(lambda st, n: st.read(n, True))
    define(s, "[method]input-stream.skip")(lambda st, n: st.skip(n, False))
    define(s, "[method]input-stream.blocking-skip")(lambda st, n: st.skip(n, True))
    define(s, "[method]input-stream.subscribe")(lambda st: pollable(st.subscribe()))
    define(s, "[method]output-stream.check-write")(lambda st: st.check_write())
    define(s, "[method]output-stream.write")(lambda st, b: st.write(b))
    define(s, "[method]output-stream.blocking-write-and-flush")(lambda st, b: st.write_and_flush(b))
    define(s, "[method]output-stream.flush")(lambda st: st.flush())
    define(s, "[method]output-stream.blocking-flush")(lambda st: st.flush())
    define(s, "[method]output-stream.subscribe")(lambda st: pollable(st.subscribe()))
    define(s, "[method]output-stream.write-zeroes")(lambda st, n: st.write(b"\0" * min(n, 1 << 16)))
    define(s, "[method]output-stream.blocking-write-zeroes-and-flush")(
        lambda st, n: st.write_and_flush(b"\0" * min(n, 1 << 16))
    )
    define(s, "[method]output-stream.splice")(lambda dst, src, n: dst.splice(src, n, False))
    define(s, "[method]output-stream.blocking-splice")(lambda dst, src, n: dst.splice(src, n, True))

    # ---- wasi:cli stdio (into the component's log), and the monotonic clock
    out_stream = resource("output-stream")
    define("wasi:cli/stdout", "get-stdout")(lambda: out_stream(OutputStream(lambda b: ctx.output("stdout", b))))
    define("wasi:cli/stderr", "get-stderr")(lambda: out_stream(OutputStream(lambda b: ctx.output("stderr", b))))
    define("wasi:cli/stdin", "get-stdin")(lambda: resource("input-stream")(InputStream(_Empty())))
    # No directory is preopened (HTTP components get no volumes), so no file can be opened: the filesystem is
    # absent. Saying so instead of trapping lets a CPython guest print its traceback when it fails.
    define("wasi:filesystem/preopens", "get-directories")(lambda: [])
    define(CLOCK, "now")(time.monotonic_ns)
    define(CLOCK, "resolution")(lambda: 1)
    define(CLOCK, "subscribe-instant")(lambda when: pollable(Pollable.at(when)))
    define(CLOCK, "subscribe-duration")(lambda d: pollable(Pollable.at(time.monotonic_ns() + d)))

    # ---- wasi:http/types: fields
    t = TYPES
    fields = resource("fields")
    define(t, "[constructor]fields")(lambda: fields(m.Fields()))
    define(t, "[static]fields.from-list")(lambda entries: _map_ok(m.Fields.from_list(entries), fields))
    define(t, "[method]fields.get")(lambda f, name: f.get(name))
    define(t, "[method]fields.has")(lambda f, name: bool(f.get(name)))
    define(t, "[method]fields.set")(lambda f, name, values: f.set(name, values))
    define(t, "[method]fields.delete")(lambda f, name: f.delete(name))
    define(t, "[method]fields.append")(lambda f, name, value: f.append(name, value))
    define(t, "[method]fields.entries")(lambda f: list(f.entries))
    define(t, "[method]fields.clone")(lambda f: fields(m.Fields(f.entries)))

    # ---- incoming request and body
    define(t, "[method]incoming-request.method")(lambda r: m.method_variant(r.method))
    define(t, "[method]incoming-request.path-with-query")(lambda r: r.path_with_query)
    define(t, "[method]incoming-request.scheme")(lambda r: m.scheme_variant(r.scheme))
    define(t, "[method]incoming-request.authority")(lambda r: r.authority or None)
    define(t, "[method]incoming-request.headers")(lambda r: fields(m.Fields(r.headers, mutable=False)))
    define(t, "[method]incoming-request.consume")(lambda r: _map_ok(r.consume(), resource("incoming-body")))
    define(t, "[method]incoming-body.stream")(lambda b: _map_ok(b.stream(), resource("input-stream")))
    define(t, "[static]incoming-body.finish")(lambda b: resource("future-trailers")(b.finish()))
    define(t, "[method]future-trailers.subscribe")(lambda _f: pollable(Pollable.now()))
    define(t, "[method]future-trailers.get")(lambda f: f.get())

    # ---- outgoing response and body, and the outparam
    define(t, "[constructor]outgoing-response")(
        lambda headers: resource("outgoing-response")(m.OutgoingResponse(headers.frozen()))
    )
    define(t, "[method]outgoing-response.status-code")(lambda r: r.status)
    define(t, "[method]outgoing-response.set-status-code")(lambda r, code: r.set_status(code))
    define(t, "[method]outgoing-response.headers")(lambda r: fields(r.headers.frozen()))
    define(t, "[method]outgoing-response.body")(lambda r: _map_ok(r.take_body(), resource("outgoing-body")))
    define(t, "[method]outgoing-body.write")(lambda b: _map_ok(b.write(), out_stream))
    define(t, "[static]outgoing-body.finish")(lambda b, trailers: b.finish(trailers))
    define(t, "[static]response-outparam.set")(lambda out, response: out.answer(response))
    define(t, "http-error-code")(lambda _e: None)

    # ---- outgoing requests (the client side), through the component's allowed hosts
    define(t, "[constructor]outgoing-request")(
        lambda headers: resource("outgoing-request")(OutgoingRequest(headers.frozen()))
    )
    define(t, "[method]outgoing-request.body")(
        lambda r: _map_ok(r.take_body(), resource("outgoing-body"))  # a RequestBody behind the same type
    )
    _accessors(define, t, "outgoing-request", ("method", "path-with-query", "scheme", "authority"))
    define(t, "[method]outgoing-request.headers")(lambda r: fields(r.headers.frozen()))
    define(t, "[constructor]request-options")(lambda: resource("request-options")(RequestOptions()))
    for name, attr in (
        ("connect-timeout", "connect"),
        ("first-byte-timeout", "first_byte"),
        ("between-bytes-timeout", "between_bytes"),
    ):
        define(t, f"[method]request-options.{name}")(lambda o, a=attr: getattr(o, a))
        define(t, f"[method]request-options.set-{name}")(_setter(attr))
    define(t, "[method]future-incoming-response.subscribe")(lambda f: pollable(f.subscribe()))
    define(t, "[method]future-incoming-response.get")(lambda f: _response(f.get(), resource("incoming-response")))
    define(t, "[method]incoming-response.status")(lambda r: r.status)
    define(t, "[method]incoming-response.headers")(lambda r: fields(m.Fields(r.headers, mutable=False)))
    define(t, "[method]incoming-response.consume")(lambda r: _map_ok(r.consume(), resource("incoming-body")))
    define(OUTGOING, "handle")(
        lambda request, options: _map_ok(ctx.outbound.handle(request, options), resource("future-incoming-response"))
    )
    return impl


def _accessors(
    define: Callable[[str, str], Callable[[Impl], Impl]], iface: str, res: str, names: tuple[str, ...]
) -> None:
    for name in names:
        attr = name.replace("-", "_")
        if name == "method":
            define(iface, f"[method]{res}.method")(lambda r: m.method_variant(r.method))
            define(iface, f"[method]{res}.set-method")(_setter("method", _method_name))
        elif name == "scheme":
            define(iface, f"[method]{res}.scheme")(lambda r: None if r.scheme is None else m.scheme_variant(r.scheme))
            define(iface, f"[method]{res}.set-scheme")(_setter("scheme", _scheme_name))
        else:
            define(iface, f"[method]{res}.{name}")(lambda r, a=attr: getattr(r, a))
            define(iface, f"[method]{res}.set-{name}")(_setter(attr))


def _setter(attr: str, convert: Callable[[Any], Any] | None = None) -> Impl:
    """``set-x: func(value) -> result``; a None value (an absent option) is kept as None."""

    def set_value(obj: Any, value: Any) -> Any:
        setattr(obj, attr, convert(value) if convert is not None and value is not None else value)
        return ok()

    return set_value


def _method_name(v: Any) -> str:
    return str(v.payload) if v.tag == "other" else v.tag.upper()


def _scheme_name(v: Any) -> str:
    return str(v.payload).lower() if v.tag == "other" else v.tag.lower()


def _map_ok(result: Any, wrap: Callable[[Any], Any]) -> Any:
    """``result<T>`` whose ok payload is a host object: hand the guest a handle to it."""
    return ok(wrap(result.payload)) if result.tag == "ok" else result


def _response(got: Any, wrap: Callable[[Any], Any]) -> Any:
    """future-incoming-response.get: option<result<result<incoming-response, error-code>>>."""
    if got is None or got.tag != "ok":
        return got
    inner = got.payload
    return ok(_map_ok(inner, wrap)) if inner.tag == "ok" else got


class _Empty:
    def read(self, n: int, wait: bool) -> bytes | None:
        return None

    def ready(self) -> bool:
        return True

    def wait(self) -> None:
        return None
