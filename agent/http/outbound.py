"""wasi:http/outgoing-handler: a component's own HTTP requests, made by the agent (urllib3) and only to
the hosts its ``grants.allowedOutboundHosts`` allow. Anything else answers ``HTTP-request-denied``,
is counted and becomes a ``CapabilityDenied`` event; nothing leaves the node.

The request is sent when the guest first asks for the response (``future-incoming-response``'s
pollable or ``get``), so a body written after ``handle`` goes with it. The response body is read whole,
up to :data:`MAX_RESPONSE` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import urllib3
from wasmtime.component import Variant

from agent.http.messages import Fields, IncomingBody, header_error
from agent.http.streams import Buffered, OutputStream, Pollable, err, ok
from agent.runtime.glue import HostTrap
from neon.outbound_hosts import HostPattern, allowed

MAX_RESPONSE = 16 << 20
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
_POOL = urllib3.PoolManager(num_pools=32, maxsize=8, retries=False)


@dataclass
class RequestOptions:
    connect: int | None = None  # nanoseconds
    first_byte: int | None = None
    between_bytes: int | None = None


@dataclass
class OutgoingRequest:
    headers: Fields
    method: str = "GET"
    path_with_query: str | None = None
    scheme: str | None = None
    authority: str | None = None
    body: RequestBody | None = None

    def take_body(self) -> Variant:
        if self.body is not None:
            return err()
        self.body = RequestBody()
        return ok(self.body)


@dataclass
class RequestBody:
    chunks: list[bytes] = field(default_factory=list)
    stream_taken: bool = False
    stream_open: bool = False
    finished: bool = False

    def write(self) -> Variant:
        if self.stream_taken:
            return err()
        self.stream_taken = self.stream_open = True
        return ok(OutputStream(self.chunks.append, parent=self))

    def finish(self, _trailers: Any) -> Variant:
        if self.stream_open:
            raise HostTrap("outgoing-body.finish while its output-stream is alive (drop the stream first)")
        self.finished = True
        return ok()


@dataclass
class IncomingResponse:
    status: int
    headers: list[tuple[str, bytes]]
    body: bytes
    consumed: bool = False

    def consume(self) -> Variant:
        if self.consumed:
            return err()
        self.consumed = True
        return ok(IncomingBody(Buffered(self.body)))


class FutureResponse:
    """The response of one outgoing request, fetched when first asked for."""

    def __init__(self, send: Callable[[], Variant]) -> None:
        self._send = send
        self._result: Variant | None = None
        self._taken = False

    def resolve(self) -> Variant:
        if self._result is None:
            self._result = self._send()
        return self._result

    def subscribe(self) -> Pollable:
        return Pollable(lambda: self._result is not None, lambda: (self.resolve(), None)[1])

    def get(self) -> Any:
        # option<result<result<incoming-response, error-code>>>
        if self._result is None:
            return None
        if self._taken:
            return err()
        self._taken = True
        return ok(self._result)


class Outbound:
    """One component's outgoing handler: its allowed hosts, and what to do on a denial."""

    def __init__(self, patterns: tuple[HostPattern, ...], denied: Callable[[str], None]) -> None:
        self.patterns = patterns
        self.denied = denied

    def handle(self, request: OutgoingRequest, options: RequestOptions | None) -> Variant:
        scheme = (request.scheme or "https").lower()
        if scheme not in ("http", "https") or not request.authority:
            return err(Variant("HTTP-request-URI-invalid"))
        parts = urlsplit(f"{scheme}://{request.authority}")
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return err(Variant("HTTP-request-URI-invalid"))
        if not allowed(self.patterns, scheme, host, port):
            self.denied(f"outbound HTTP to {scheme}://{request.authority} (not in grants.allowedOutboundHosts)")
            return err(Variant("HTTP-request-denied"))
        url = f"{scheme}://{request.authority}{request.path_with_query or '/'}"
        return ok(FutureResponse(lambda: _send(url, request, options or RequestOptions())))


def _send(url: str, request: OutgoingRequest, options: RequestOptions) -> Variant:
    headers = [(k, v) for k, v in request.headers.entries if header_error(k, v) is None]
    body = b"".join(request.body.chunks) if request.body is not None else None
    timeout = urllib3.Timeout(
        connect=options.connect / 1e9 if options.connect else CONNECT_TIMEOUT,
        read=(options.first_byte or options.between_bytes or 0) / 1e9 or READ_TIMEOUT,
    )
    try:
        response = _POOL.request(
            request.method,
            url,
            body=body,
            headers=urllib3.HTTPHeaderDict([(k, v.decode("latin-1")) for k, v in headers]),
            timeout=timeout,
            redirect=False,
            preload_content=False,
        )
        data = response.read(MAX_RESPONSE + 1)
        response.release_conn()
    except urllib3.exceptions.NewConnectionError as error:
        reason = str(error).lower()
        if "refused" in reason:
            return err(Variant("connection-refused"))
        return err(Variant("destination-unavailable"))
    except urllib3.exceptions.NameResolutionError:
        return err(Variant("destination-not-found"))
    except urllib3.exceptions.ConnectTimeoutError:
        return err(Variant("connection-timeout"))
    except urllib3.exceptions.ReadTimeoutError:
        return err(Variant("connection-read-timeout"))
    except urllib3.exceptions.SSLError:
        return err(Variant("TLS-certificate-error"))
    except urllib3.exceptions.HTTPError as error:
        return err(Variant("internal-error", str(error)[:200]))
    if len(data) > MAX_RESPONSE:
        return err(Variant("HTTP-response-body-size", MAX_RESPONSE))
    fields = [(k, v.encode("latin-1")) for k, v in response.headers.items()]
    return ok(IncomingResponse(response.status, fields, data))
