"""A small read-only HTTP(S) server for metrics, the dashboard and its JSON.

GET and HEAD only, one request per connection, bounded request size and time.
With credentials it is HTTPS and asks for a client certificate signed by the
cluster CA, like every other port: a route names the roles it serves
(Prometheus scrapes with a viewer certificate; ``neon dashboard`` proxies the
page with the user's). ``--insecure`` serves plain HTTP to anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neon.errors import InvalidArgument
from neon.observe import log
from neon.security.tls import PLAINTEXT, Credentials, Peer, _peer_of_pem

_log = log.get("neon.rpc.http")

MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    peer: Peer
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(doc, separators=(",", ":")).encode(), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode(), content_type)


Handler = Callable[[Request], Awaitable[Response]]
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}


@dataclass(frozen=True)
class Route:
    handler: Handler
    roles: frozenset[str]


class HttpServer:
    """Routes by exact path; ``start`` binds and returns the port."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.routes: dict[str, Route] = {}
        self._server: asyncio.base_events.Server | None = None
        self._ssl = None if creds.plaintext else server_context(creds)

    def route(self, path: str, handler: Handler, roles: Iterable[str]) -> None:
        self.routes[path] = Route(handler, frozenset(roles))

    def reload(self, creds: Credentials) -> None:
        """Present a renewed certificate from the next connection on."""
        if self._ssl is not None and not creds.plaintext:
            _load_identity(self._ssl, creds)

    async def start(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(
            self._serve, host.strip("[]") or None, int(port), ssl=self._ssl, limit=MAX_HEAD
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    @property
    def scheme(self) -> str:
        return "http" if self._ssl is None else "https"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response, head_only = await asyncio.wait_for(self._answer(reader, writer), READ_TIMEOUT)
            status = f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}\r\n"
            headers = (
                f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
                "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
            )
            writer.write((status + headers).encode() + (b"" if head_only else response.body))
            await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # noqa: BLE001 - one bad request never stops the server
            _log.exception("http request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[Response, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Response.text("malformed request line\n", 400), False
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return Response.text(f"{method} is not served here: this server is read-only (GET)\n", 405), False
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        url = urllib.parse.urlsplit(target)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        route = self.routes.get(url.path)
        if route is None:
            known = ", ".join(sorted(self.routes))
            return Response.text(f"no page at {url.path}; served here: {known}\n", 404), method == "HEAD"
        peer = self._peer(writer)
        if peer is not PLAINTEXT and peer.role not in route.roles:
            need = " or ".join(sorted(route.roles))
            who = f"{peer.name} ({peer.role})" if peer.authenticated else "a caller without a client certificate"
            return Response.text(f"{who} may not read {url.path}; it needs a {need} certificate\n", 403), False
        try:
            return await route.handler(Request(url.path, query, peer, headers)), method == "HEAD"
        except InvalidArgument as err:
            return Response.text(err.message + "\n", 400), False

    def _peer(self, writer: asyncio.StreamWriter) -> Peer:
        obj = writer.get_extra_info("ssl_object")
        if obj is None:
            return PLAINTEXT
        der = obj.getpeercert(binary_form=True)
        if not der:
            return Peer("", "", authenticated=False)
        return _peer_of_pem(ssl.DER_cert_to_PEM_cert(der).encode())


def server_context(creds: Credentials) -> ssl.SSLContext:
    """TLS 1.2+ with the process's certificate; client certificates are checked against the CA when sent
    (routes then check the role; a caller without one is refused by the route)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=creds.ca.decode())
    _load_identity(ctx, creds)
    return ctx


def client_context(creds: Credentials) -> ssl.SSLContext:
    """For reaching a Neon Grid HTTPS port with a user's (or node's) certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=creds.ca.decode())
    _load_identity(ctx, creds)
    return ctx


def _load_identity(ctx: ssl.SSLContext, creds: Credentials) -> None:
    """ssl loads keys only from files: write them to a private temporary directory, load, remove."""
    with tempfile.TemporaryDirectory(prefix="neon-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(creds.cert)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(creds.key)
        ctx.load_cert_chain(cert, key)


def get(
    address: str, path: str, ctx: ssl.SSLContext | None, server_name: str, timeout: float = 15.0
) -> tuple[int, str, bytes]:
    """One GET to a Neon Grid HTTP(S) port, checking its certificate against ``server_name`` (its role
    name, not the address dialled); ``ctx`` None: plain HTTP. Returns status, content type and body."""
    host, _, port = address.rpartition(":")
    raw = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.sock = ctx.wrap_socket(raw, server_hostname=server_name) if ctx is not None else raw
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type", "text/plain"), reply.read()
    finally:
        conn.close()
