"""The front door's own answers (aiohttp responses): a short text with a status, and a response's headers
copied from a guest's (or a handing-over node's), leaving the framing to the server."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web


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
