"""hello-http: a wasi:http/proxy component in Python (componentize-py).

GET  /hello/NAME   -> "hello, NAME" with the path it was asked for
POST /hello/...    -> echoes the request body back, with its length in x-body-length (and, when the request
                      says it takes trailers, `TE: trailers`, in a trailer x-echoed-bytes too)
GET  /hello/fetch?url=URL -> fetches URL through wasi:http/outgoing-handler and returns its status and body
"""

from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)


def read_all(body: IncomingBody) -> bytes:
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as err:
            if isinstance(err.value, StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)  # a child of the body: dropped before the body is finished
    return b"".join(chunks)


def respond(
    out: ResponseOutparam,
    status: int,
    body: bytes,
    headers: list[tuple[str, bytes]],
    trailers: list[tuple[str, bytes]] | None = None,
) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain; charset=utf-8"), *headers]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    stream = outgoing.write()
    for i in range(0, len(body), 4096):  # blocking-write-and-flush takes at most 4096 bytes a call
        stream.blocking_write_and_flush(body[i : i + 4096])
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, Fields.from_list(trailers) if trailers else None)


def fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    request = OutgoingRequest(Fields())
    request.set_method(Method_Get())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    future = outgoing_handler.handle(request, None)
    future.subscribe().block()
    outer = future.get()  # some(ok(ok(incoming-response))) or some(ok(err(error-code)))
    if outer is None or isinstance(outer, Err):
        raise Err("the response was not ready or was taken already")
    inner = outer.value
    if isinstance(inner, Err):
        raise inner
    response = inner.value
    status = response.status()
    return status, read_all(response.consume())


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        method = request.method()
        body = read_all(request.consume())
        parts = urlsplit(path)
        if parts.path == "/hello/fetch" and isinstance(method, Method_Get):
            url = parse_qs(parts.query).get("url", [""])[0]
            try:
                status, fetched = fetch(url)
            except Err as err:
                respond(response_out, 502, f"fetch {url} failed: {err.value}\n".encode(), [])
                return
            respond(response_out, 200, f"{status}\n".encode() + fetched, [])
        elif isinstance(method, Method_Post):
            length = str(len(body)).encode()
            fields = request.headers()  # a child of the request: dropped before it
            wants_trailers = any(b"trailers" in value.lower() for value in fields.get("te"))
            fields.__exit__(None, None, None)
            trailers = [("x-echoed-bytes", length)] if wants_trailers else None
            respond(response_out, 200, body, [("x-body-length", length)], trailers)
        else:
            name = parts.path.rsplit("/", 1)[-1] or "world"
            respond(response_out, 200, f"hello, {name} (you asked for {path})\n".encode(), [])
