"""``neon dashboard``: the control plane's dashboard in a browser, as ``kubectl proxy`` does it.

The control plane serves the dashboard over HTTPS and asks for a client
certificate, which browsers handle badly. This proxy listens on loopback only
and forwards each GET to the control plane with the user's certificate,
checking the control plane's certificate against the cluster CA. Whoever can
reach the proxy reads as that user, so it refuses any other interface, and
requests whose Host header is not its own (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from neon.errors import FailedPrecondition, InvalidArgument
from neon.rpc.http import client_context, get
from neon.security.pki import CONTROLPLANE_NAME
from neon.security.tls import Credentials


class DashboardProxy:
    """Forwards GETs to ``upstream`` (the control plane's HTTP address) with ``creds``."""

    def __init__(self, upstream: str, creds: Credentials, listen: str = "127.0.0.1:0") -> None:
        host, _, port = listen.rpartition(":")
        try:
            loopback = ipaddress.ip_address(host or "127.0.0.1").is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise InvalidArgument(
                f"neon dashboard listens on loopback only (it reads as you); got {listen}", field="listen"
            )
        self.upstream = upstream
        self.creds = creds
        self._ssl = None if creds.plaintext else client_context(creds)
        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
        self.server.daemon_threads = True
        bound_host, bound_port = self.server.server_address[:2]
        self.address = f"{bound_host!s}:{bound_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def serve_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.server.serve_forever, name="dashboard-proxy", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fetch(self, path: str) -> tuple[int, str, bytes]:
        return get(self.upstream, path, self._ssl, CONTROLPLANE_NAME)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server convention
                host = self.headers.get("Host", "")
                if host not in (proxy.address, f"localhost:{proxy.address.rsplit(':', 1)[1]}"):
                    self._send(403, "text/plain", f"unexpected Host {host!r}\n".encode())
                    return
                try:
                    status, kind, body = proxy.fetch(self.path)
                except OSError as err:
                    message = f"the control plane's dashboard at {proxy.upstream} did not answer: {err}\n"
                    self._send(502, "text/plain", message.encode())
                    return
                self._send(status, kind, body)

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

        return Handler


def serve_dashboard(client: Any, args: Any, creds: Credentials) -> int:
    """``neon dashboard``: find this control plane's HTTP address, proxy it until Ctrl-C."""
    replicas = list(client.control_planes().replicas)
    answered = next((r for r in replicas if r.self), None) or next((r for r in replicas if r.leader), None)
    if answered is None or not answered.http_address:
        raise FailedPrecondition(
            "the control plane serves no dashboard (it runs with --http-listen off); "
            "start it with --http-listen HOST:PORT"
        )
    proxy = DashboardProxy(answered.http_address, creds, args.listen)
    print(f"dashboard: {proxy.url}  (proxied to {answered.http_address}); Ctrl-C to stop", flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(proxy.address)
    try:
        proxy.server.serve_forever()
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    finally:
        proxy.server.server_close()
    return 0
