"""An HTTP guest that misbehaves on purpose, for the front door's tests. By path:

/echo       streams the request body back as it reads it (64 KiB at a time)
/big?n=N    answers N bytes of 'x' (written 4 KiB at a time)
/never      never answers (spins until its deadline stops it)
/twice      sets its response twice (the second set traps)
/trap       raises before answering
/silent     returns without setting a response
/unfinished starts a body and returns without finishing it
/fetch?url= fetches the URL through wasi:http/outgoing-handler
anything else: reads the body, then 200 "probe METHOD PATH BODY-LENGTH"
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
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)


def start(out: ResponseOutparam, status: int = 200):
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    return body, body.write()


def end(body: OutgoingBody, stream) -> None:
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


def write(stream, data: bytes) -> None:
    for i in range(0, len(data), 4096):
        stream.blocking_write_and_flush(data[i : i + 4096])


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
    stream.__exit__(None, None, None)
    return b"".join(chunks)


def fetch(url: str) -> bytes:
    parts = urlsplit(url)
    request = OutgoingRequest(Fields())
    request.set_method(Method_Get())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path or "/")
    future = outgoing_handler.handle(request, None)
    future.subscribe().block()
    outer = future.get()
    inner = outer.value
    if isinstance(inner, Err):
        raise inner
    response = inner.value
    return f"{response.status()} ".encode() + read_all(response.consume())


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        parts = urlsplit(request.path_with_query() or "/")
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/echo":
            incoming = request.consume()
            source = incoming.stream()
            body, stream = start(response_out)
            while True:
                try:
                    chunk = source.blocking_read(65536)
                except Err as err:
                    if isinstance(err.value, StreamError_Closed):
                        break
                    raise
                write(stream, chunk)
            source.__exit__(None, None, None)
            end(body, stream)
        elif path == "/big":
            body, stream = start(response_out)
            write(stream, b"x" * int(query.get("n", ["0"])[0]))
            end(body, stream)
        elif path == "/never":
            while True:
                pass
        elif path == "/twice":
            start(response_out)
            ResponseOutparam.set(response_out, Ok(OutgoingResponse(Fields())))
        elif path == "/trap":
            raise RuntimeError("the probe fails on purpose")
        elif path == "/silent":
            return
        elif path == "/unfinished":
            _, stream = start(response_out)
            write(stream, b"partial")
        elif path == "/fetch":
            try:
                got = fetch(query.get("url", [""])[0])
            except Err as err:
                body, stream = start(response_out, 502)
                write(stream, f"denied: {err.value}".encode())
                end(body, stream)
                return
            body, stream = start(response_out)
            write(stream, got)
            end(body, stream)
        else:
            method = request.method()
            received = read_all(request.consume())
            body, stream = start(response_out)
            write(stream, f"probe {type(method).__name__} {path} {len(received)}".encode())
            end(body, stream)
