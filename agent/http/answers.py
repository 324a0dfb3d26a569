"""The front door's own answers (aiohttp responses): a short text with a status; a response's headers copied
from a guest's (or a handing-over node's), leaving the framing to the server; the end of a streamed body with
its trailers; a response cut off."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter


def text(status: int, body: str, retry: int | None = None) -> web.Response:
    response = web.Response(status=status, text=body)
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    return response


def copy_headers(response: web.StreamResponse, headers: Iterable[tuple[str, bytes]]) -> None:
    """Add ``headers`` to ``response``, all but Content-Length (the server frames the body itself)."""
    for name, value in headers:
        if name.lower() != "content-length":
            response.headers.add(name, value.decode("latin-1"))


async def end_body(
    response: web.StreamResponse, writer: AbstractStreamWriter, trailers: list[tuple[str, bytes]]
) -> None:
    """End a streamed response's body, with ``trailers`` when there are any and its framing can carry them
    (chunked, so HTTP/1.1; aiohttp writes no trailers itself, aio-libs/aiohttp#1652): the last chunk and the
    trailer fields are written here, then aiohttp ends the response with nothing more to add. The guest's fields
    were checked as wasi:http fields (names are tokens, values have no line breaks)."""
    if trailers and getattr(writer, "chunked", False):
        fields = b"".join(name.encode("latin-1") + b": " + value + b"\r\n" for name, value in trailers)
        writer.chunked = False  # type: ignore[attr-defined]  # aiohttp's StreamWriter: framed here from now on
        await writer.write(b"0\r\n" + fields + b"\r\n")
    await response.write_eof()


def abort(request: web.BaseRequest) -> None:
    """Cut the client's connection off: a response that broke off midway must not look complete."""
    transport = request.transport
    if transport is not None:
        transport.abort()
